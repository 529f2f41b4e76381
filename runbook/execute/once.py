"""run_once, as in Ansible: within a batch the step runs on the batch's first host (the first one
still in the play: a host that failed or left the phase does not count) while the others wait; then
its outcome is every host's (failed and skipped as they are, ran is ok: the change was made on the
first host) and its registered result is shared with all of them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runbook.execute.driver import Cancelled
from runbook.execute.hostctx import HostRun, StepRecord
from runbook.model.runbook import Step


@dataclass
class Once:
    """One run_once step in one batch and phase: who runs it, and its result for the others."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    running: bool = False  # a host is running it now
    host: str = ""
    record: StepRecord | None = None
    registered: Any = None

    def claim(self, host: str, candidates: Callable[[], list[str]], cancel: threading.Event) -> bool:
        """True: ``host`` runs the step. False: another host has, its result is ready (``copy``).
        ``candidates()``: the hosts, in batch order, that may still reach the step (none known: the
        first host to get here runs it, as for a fallback step's run_once)."""
        with self.cond:
            while self.record is None:
                if cancel.is_set():
                    raise Cancelled("interrupted")
                if not self.running:
                    hosts = candidates()
                    if not hosts or hosts[0] == host or host not in hosts:
                        self.running = True
                        return True
                self.cond.wait(0.05)  # the first host runs it, or fails/leaves before it gets there
        return False

    def done(self, hr: HostRun, step: Step, rec: StepRecord) -> None:
        with self.cond:
            self.host, self.record = hr.name, rec
            self.registered = hr.facts.get(step.register) if step.register else None
            self.cond.notify_all()

    def abandon(self) -> None:
        """The running host was interrupted: nobody takes its place (the run is stopping)."""
        with self.cond:
            self.running = False
            self.cond.notify_all()

    def copy(self, hr: HostRun, step: Step, phase: str) -> StepRecord:
        """The result on another host: the first host's outcome and registered value."""
        first = self.record
        assert first is not None
        if step.register and self.registered is not None:
            hr.facts[step.register] = self.registered
        outcome = first.outcome if first.outcome in ("failed", "skipped") else "ok"
        detail = f": {first.msg}" if outcome != "ok" and first.msg else ""
        return StepRecord(
            phase, step.index, step.label, step.module, outcome, rc=first.rc,
            msg=f"run_once: {'ran' if outcome == 'ok' else outcome} on {self.host}{detail}",
        )  # fmt: skip
