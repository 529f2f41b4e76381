"""The engine's event stream. Subscribers (console renderer, audit writer, JSON/JUnit output) only
listen; they never steer the run. Events flow one way: engine -> bus -> subscribers.

Event kinds (``Event.kind``):
  run.start      data: runbook, runbook_file, runbook_sha256, git_commit, plan_sha256 (SHA-256 of
                       the static plan, see planner.plan_digest), inventory (sources), limit,
                       extra_vars (redacted), operator {user, host}, dry_run, hosts, tags
  phase.start    phase (preflight | steps | rollback | always)
  host.start     host
  step.start     host, step, phase, data: {module, index, command?}
  step.end       host, step, phase, outcome (ok|changed|failed|skipped|rolled_back), rc,
                 duration, data: {msg, command, stdout_sha256, stderr_sha256, stdout, stderr, attempts,
                 key (fallback/undo steps: e.g. steps[2].fallback[0]), diffs (--diff: the files
                 written, [{kind, summary, diff}]; the audit keeps each diff's sha256)}
                 (stdout/stderr are already redacted; the audit stores only their digests). A step
                 with fallback steps ends after them: its step.end comes last, msg "recovered by
                 fallback: <why it failed>" when they all succeeded
  step.item      host, step (the loop item's name, rendered: "ping alpha"), phase, outcome,
                 data: {index, msg, module}: one loop item of a step (its step.end follows the items)
  step.output    host, step, data: {line}   (live notes from long steps)
  snapshot       host, step, data: {snapshot keys summary, state_file}
  approval       host?, step, data: {approved_by, method}
  lock.broken    host, data: {lock, dir, run_id, pid, control_host, since, why}: a stale deploy lock
                 (its holder dead, or past its TTL) this run broke before taking the lock
  rollback.start host, data: {reason}
  rollback.step  host, step, outcome, rc, duration, data: {msg}
  rollback.verify host, outcome (ok|failed), data: {step, module, index, msg}: the restored state
                 checked against the step's oldest snapshot (msg names what differs)
  rollback.end   host, outcome (ok|failed), data: {problems: what a failed rollback left, per step}
  host.end       host, outcome, data: {stats}
  run.end        outcome (success|failed|rolled_back|preflight_failed|refused|aborted|rollback_failed|
                 interrupted; refused: nothing changed, aborted: the audit/state could not be written),
                 data: {exit_code, stats per host}
Everything in ``data`` is JSON-serialisable and already redacted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runbook.execute import faultpoints


@dataclass(frozen=True)
class Event:
    kind: str
    run_id: str
    host: str | None = None
    step: str | None = None
    phase: str | None = None
    outcome: str | None = None
    rc: int | None = None
    duration: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    ts: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))
    mono: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        d = {
            "event": self.kind,
            "run_id": self.run_id,
            "ts": self.ts,
            "host": self.host,
            "step": self.step,
            "phase": self.phase,
            "outcome": self.outcome,
            "rc": self.rc,
            "duration": None if self.duration is None else round(self.duration, 6),
        }
        d.update(self.data)
        return {k: v for k, v in d.items() if v is not None}


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out, serialised by a lock so subscribers see one event at a time, in order."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self._barriers: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        # the first subscriber failure (the audit trail cannot be written: disk full, read-only):
        # emit never raises it into the step that emitted; the engine reads it and stops the run
        self.fault: str | None = None

    def subscribe(self, fn: Subscriber) -> None:
        """``fn(event)`` is called under the bus lock. A subscriber with a ``barrier()`` method (the
        audit writer: fsync as a group commit) has it called after the lock is released, in the
        emitting thread, before ``emit`` returns."""
        self._subs.append(fn)
        barrier = getattr(fn, "barrier", None)
        if callable(barrier):
            self._barriers.append(barrier)

    def emit(self, event: Event) -> None:
        with self._lock:
            for fn in list(self._subs):
                try:
                    fn(event)
                except Exception as exc:
                    self._failed(fn, exc)
        for barrier in self._barriers:
            try:
                barrier()
            except Exception as exc:
                self._failed(barrier, exc)
        faultpoints.event(event.kind, event.phase, event.step)  # inert unless RUNBOOK_FAULT is set (tests)

    def _failed(self, fn: Any, exc: Exception) -> None:
        with self._lock:
            if self.fault is None:
                who = getattr(fn, "__self__", fn)
                what = getattr(who, "fault_name", f"{type(who).__name__} failed")  # "audit trail ..."
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self.fault = f"{what}: {text}"

    def close(self) -> None:
        """Tell subscribers with a ``close`` method that the stream has ended."""
        for fn in self._subs:
            close = getattr(fn, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # the audit's seal could not be written
                    self._failed(close, exc)
