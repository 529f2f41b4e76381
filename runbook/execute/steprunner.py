"""Run one step on one host: its name, when, loop, run_once, fallback steps, ignore_errors, register,
no_log — and the events for all of it. One item's attempts (render, retries/until, timeout, judging,
snapshots) are in runbook.execute.attempts."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runbook.errors import RenderError, RunbookError
from runbook.execute import faults, leftovers
from runbook.execute.attempts import Attempts, Item, plan_budget
from runbook.execute.blocks import Blocks
from runbook.execute.driver import Cancelled, Drive
from runbook.execute.events import Event, EventBus
from runbook.execute.gather import Gather, Job, Position
from runbook.execute.hostctx import HostRun, StepRecord
from runbook.execute.once import Once
from runbook.execute.transports.capture import JoinedCapture
from runbook.kinds import base as kinds
from runbook.model.runbook import Step
from runbook.model.values import to_number
from runbook.render.runtime import KNOWN_AT_RUN_TIME, Anything, reading, touched_now, unknowable
from runbook.render.secrets import Redactor
from runbook.render.templar import LazyVars, Templar, is_template

NO_LOG = "(output hidden: no_log)"

CONDITION_FALSE = "condition false"
STEP_DECLINED = "not run: declined at --step"


@dataclass
class StepRunner:
    """Shared by every host of a run; holds no per-host state itself."""

    bus: EventBus
    run_id: str
    templar: Templar
    redactor: Redactor
    project_dir: Path
    loader_dirs: tuple[Path, ...]
    cancel: threading.Event
    dry_run: bool = False
    diff: bool = False  # --diff: the files a real run writes are shown as diffs
    gate: Callable[[str, str], bool] | None = None  # --step: may this step run on this host?
    persist: Callable[..., None] = lambda durable=True, **kw: None
    approve: Callable[[HostRun, Step, dict[str, Any]], tuple[bool, str, dict[str, Any]]] | None = None
    delegate: Callable[[str], HostRun] | None = None
    pinned: Callable[[], frozenset[str]] = frozenset  # releases unfinished runs may roll back to
    inflight: leftovers.InFlight = field(default_factory=lambda: leftovers.InFlight(None))
    fault: Callable[[], str | None] = lambda: None  # a run-level fault (audit/state): steps stop
    once_hosts: Callable[[str], list[str]] | None = None  # hosts, in batch order, still in the phase
    active: dict[str, tuple[Drive, Any]] = field(default_factory=dict)
    batch: Any = None  # set by the engine per phase/batch: run_once is once per batch
    handlers: tuple[Step, ...] = ()  # the runbook's handlers (notify:)
    # hosts that may still reach a batched step of a phase, with their positions (runbook.execute.gather)
    gather_peers: Callable[[str], list[tuple[str, Position | None]]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _once: dict[tuple[Any, ...], Once] = field(default_factory=dict)
    _written: dict[str, str] = field(default_factory=dict)  # step key -> its name as written
    _gathers: dict[tuple[Any, ...], Gather] = field(default_factory=dict)
    attempts: Attempts = field(init=False, repr=False)
    blocks: Blocks = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.attempts = Attempts(
            templar=self.templar, redactor=self.redactor, emit=self.emit, project_dir=self.project_dir,
            loader_dirs=self.loader_dirs, cancel=self.cancel, run_id=self.run_id, dry_run=self.dry_run,
            persist=self.persist, delegate=self.delegate, pinned=self.pinned, inflight=self.inflight,
            fault=self.fault, active=self.active, lock=self._lock, diff=self.diff,
            batch_hook=self.batch_hook,
        )  # fmt: skip
        self.blocks = Blocks(run_step=self.run_step, emit=self.emit, handlers=lambda: self.handlers, dry_run=self.dry_run)

    # ------------------------------------------------------------------------------------ events
    def emit(self, kind: str, hr: HostRun | None, step: Step | None = None, **kw: Any) -> None:
        name, phase = kw.pop("step_name", None), kw.pop("phase", None)
        self.bus.emit(
            Event(
                kind=kind,
                run_id=self.run_id,
                host=hr.name if hr else None,
                step=step.label if step else name,
                phase=phase or (step.top_phase if step else None),
                **kw,
            )
        )

    # ---------------------------------------------------------------------------------- one step
    def run_step(
        self, hr: HostRun, step: Step, *, read_only: bool = False, phase: str | None = None
    ) -> StepRecord:
        """Run a step (all loop items, then its fallback steps if it failed) on a host and return its
        record. Never raises for step failures; raises Cancelled when the run is interrupted."""
        phase = phase or step.top_phase
        step = self.named(step, hr)
        if step.phase == step.top_phase:  # where the host is, for batched steps (gather)
            hr.position = (step.index, -1, 0)
        asked = self.gate is not None and phase == "steps" and step.phase == step.top_phase
        if asked and self.gate is not None and not self.gate(hr.name, step.label):  # --step: no
            rec = StepRecord(phase, step.index, step.label, step.module, "skipped", msg=STEP_DECLINED)
            self._start(hr, step, phase)
            self._finish(hr, step, rec)
            return rec
        kind = kinds.get(step.module)
        if kind is not None and kind.runs_nested_steps:  # a block: its steps, rescue and always
            return self.blocks.run_block(hr, step, read_only=read_only, phase=phase)
        if kind is not None and kind.flushes_handlers(step.args):  # meta: flush_handlers
            rec = self._run_step(hr, step, read_only=read_only, phase=phase)
            if rec.outcome != "skipped":
                bad = self.blocks.flush_handlers(hr, read_only=read_only, phase=phase)
                if bad is not None:
                    return bad
            return rec
        if not step.run_once:
            return self._run_step(hr, step, read_only=read_only, phase=phase)
        with self._lock:
            once = self._once.setdefault((self.batch, phase, step.key), Once())
        first_only = step.phase == step.top_phase and self.once_hosts is not None
        candidates = (lambda: self.once_hosts(phase)) if first_only and self.once_hosts else list
        if not once.claim(hr.name, candidates, self.cancel):  # another host runs it: its result
            rec = once.copy(hr, step, phase)
            self._start(hr, step, phase)
            self._finish(hr, step, rec)
            return rec
        try:
            rec = self._run_step(hr, step, read_only=read_only, phase=phase)
        except BaseException:
            once.abandon()
            raise
        once.done(hr, step, rec)
        return rec

    def named(self, step: Step, hr: HostRun) -> Step:
        """The step with its name rendered for the host (``Deploy {{ version }}``); a loop's name made
        of its item names the items (``ping a, ping b``); the name as written if it cannot be
        rendered (a name never fails a step)."""
        if not step.name or not is_template(step.name):
            return step
        self._written.setdefault(step.key, step.name)  # its items' names are rendered from it
        try:
            name = str(self.templar.render_str(step.name, hr.vars(step.vars), step.location))
        except Exception:  # an undefined variable, a loop item not known yet ...
            name = self._loop_name(step, hr) if step.loop is not None else ""
        name = self.redactor.redact(name).strip()
        return replace(step, name=name) if name else step

    def item_name(self, step: Step, variables: Mapping[str, Any], loop_vars: Mapping[str, Any]) -> str:
        """One loop item's name: the step's name rendered with the item (``ping {{ item }}``), else the
        step's name and the item (its loop_control.label), as Ansible's ``(item=...)``."""
        raw = self._written.get(step.key, step.name or "")
        if raw and is_template(raw):
            try:
                return self.redactor.redact(str(self.templar.render_str(raw, variables, step.location))).strip()
            except Exception:  # pragma: no cover - the name as written, with the item
                pass
        label: Any = loop_vars.get(step.loop_var)
        if step.loop_label is not None:
            try:
                label = self.templar.render(step.loop_label, variables, step.loc("loop_control"))
            except Exception:
                pass
        shown = label if isinstance(label, str) else repr(label)
        return self.redactor.redact(f"{step.label} (item={shown[:80]})")

    def _loop_name(self, step: Step, hr: HostRun) -> str:
        """The names of a loop's items, shortened: ``a, b, c`` or ``a … z (40 items)``."""
        try:
            items = self.loop_items(step, hr.vars(step.vars)) or []
        except Exception:
            return ""
        if not items:
            return ""
        picks = list(enumerate(items)) if len(items) <= 3 else [(0, items[0]), (len(items) - 1, items[-1])]
        names = []
        for i, value in picks:
            loop_vars = {step.loop_var: value, **({step.loop_index_var: i} if step.loop_index_var else {})}
            try:
                names.append(str(self.templar.render_str(step.name or "", hr.vars(step.vars, loop_vars))))
            except Exception:
                return ""
        return ", ".join(names) if len(items) <= 3 else f"{names[0]} … {names[1]} ({len(items)} items)"

    def _start(self, hr: HostRun, step: Step, phase: str) -> None:
        self.emit("step.start", hr, step, phase=phase, data={"module": step.module, "index": step.index})

    def _run_step(self, hr: HostRun, step: Step, *, read_only: bool, phase: str) -> StepRecord:
        start = time.monotonic()
        variables = hr.vars(step.vars)
        self._start(hr, step, phase)
        at = len(hr.records)  # the step's record goes before those of its fallback steps
        try:
            fault = self.fault() if phase == "steps" else None  # rollback and always: still run
            if fault:
                rec = StepRecord(
                    phase, step.index, step.label, step.module, "failed", msg=f"not run: {fault}"
                )
                rec.error, ignorable = "fault", False
            else:
                rec, ignorable = self._body(hr, step, variables, read_only, phase)
        except Cancelled:
            raise
        except Exception as exc:  # a bug or an unexpected library error: this step's failure
            msg = faults.describe(exc, self.redactor.redact, f"{step.label} on {hr.name}")
            rec, ignorable = StepRecord(phase, step.index, step.label, step.module, "failed", msg=msg), True
        if step.fallback and self._falls_back(rec):
            rec = self._fallback(hr, step, rec, read_only, phase)
        rec.duration = time.monotonic() - start
        if rec.outcome == "failed" and step.ignore_errors and ignorable:
            rec.msg = (rec.msg + " (ignored)").strip()
            self._finish(hr, step, rec, ignored=True, at=at)
            rec.outcome = "ok"
            return rec
        self._finish(hr, step, rec, at=at)
        self.blocks.notify(hr, step, rec)
        return rec

    def _body(
        self, hr: HostRun, step: Step, variables: LazyVars, read_only: bool, phase: str
    ) -> tuple[StepRecord, bool]:
        """The step's own record, and whether ignore_errors may ignore its failure (not for a `when`
        or `loop` that cannot be evaluated, as in Ansible)."""
        try:
            with reading() as seen:
                if step.loop is None and not self._when(step, variables):  # with a loop: per item
                    rec = StepRecord(phase, step.index, step.label, step.module, "skipped", msg=CONDITION_FALSE)
                    if step.register:  # as Ansible does: `x is skipped` works afterwards
                        hr.facts[step.register] = {
                            "skipped": True, "changed": False, "failed": False, "msg": CONDITION_FALSE,
                        }  # fmt: skip
                    return rec, False
                items = self.loop_items(step, variables)
                if self.dry_run and items == [] and touched_now():  # a loop over a registered result
                    return self._known_later(hr, step, phase, "its loop items"), False
        except RunbookError as exc:
            if self.dry_run and unknowable(exc.message, seen.touched):
                return self._known_later(hr, step, phase), False
            rec = StepRecord(
                phase, step.index, step.label, step.module, "failed", msg=self.redactor.redact(str(exc))
            )
            rec.error = "render"
            return rec, False
        if items is None:
            return self._run_item(hr, step, variables, read_only, phase), True
        return self._run_loop(hr, step, items, read_only, phase), True

    def _run_loop(self, hr: HostRun, step: Step, items: list[Any], read_only: bool, phase: str) -> StepRecord:
        results, recs = [], []
        pause = step.loop_pause
        if isinstance(pause, str):  # a template: rendered once, before the first item
            try:
                rendered = self.templar.render(pause, hr.vars(step.vars), step.location)
                pause = float(to_number(rendered))
            except (RunbookError, ValueError) as exc:
                problem = exc.message if isinstance(exc, RunbookError) else str(exc)
                rec = StepRecord(
                    phase, step.index, step.label, step.module, "failed",
                    msg=self.redactor.redact(f"loop_control.pause {problem}"),
                )  # fmt: skip
                rec.error = "render"
                return rec
        started, cut = time.monotonic(), ""
        # the items' outputs joined are capped as a whole (each item's is capped by its transport):
        # the step's record and what it registers hold at most the limit, whatever the item count
        limit = hr.output_limit
        joined = {s: JoinedCapture(limit, self.redactor.redact) for s in ("stdout", "stderr")}
        for i, value in enumerate(items):
            if i and pause and not self.dry_run and self.cancel.wait(pause):
                raise Cancelled("interrupted")
            spent = time.monotonic() - started
            if i and self.dry_run and read_only and spent > plan_budget():
                cut = (f"dry-run: ran {i} of {len(items)} items in {spent:.0f}s; the other {len(items) - i} "
                       f"run during the real run (a plan spends at most {plan_budget():g}s on a loop of probes)")  # fmt: skip
                break
            loop_vars = {step.loop_var: value}
            if step.loop_index_var:
                loop_vars[step.loop_index_var] = i
            variables = hr.vars(step.vars, loop_vars)
            r = self._run_item(hr, step, variables, read_only, phase, loop_vars, i)
            for stream, cap in joined.items():
                cap.add(getattr(r, stream))
                setattr(r, stream, "")  # held once, in the capture
            recs.append(r)
            self.emit(
                "step.item", hr, None, step_name=self.item_name(step, variables, loop_vars), phase=phase,
                outcome=r.outcome, data={"index": i, "msg": self.redactor.redact(r.msg), "module": step.module},
            )  # fmt: skip
            status = {
                "changed": r.outcome == "changed",
                "failed": r.outcome == "failed",
                "skipped": r.outcome == "skipped",
                "msg": r.msg,
            }
            results.append({**status, **getattr(r, "_registered", {}), step.loop_var: value})
            _cut(results, joined)
            if r.outcome == "failed" and not step.ignore_errors:
                break
        outcomes = {r.outcome for r in recs}
        outcome = (
            "failed"
            if "failed" in outcomes
            else "changed"
            if "changed" in outcomes
            else "skipped"
            if outcomes == {"skipped"}
            else "ok"
        )
        rec = StepRecord(
            phase, step.index, step.label, step.module, outcome,
            rc=next((r.rc for r in recs if r.outcome == "failed"), recs[-1].rc if recs else None),
            msg="; ".join([*(r.msg for r in recs if r.msg), *([cut] if cut else [])])[:2000],
            command="\n".join(r.command for r in recs if r.command) or None,
            stdout=joined["stdout"].text(), stderr=joined["stderr"].text(),
            planned=[p for r in recs for p in r.planned], attempts=max((r.attempts for r in recs), default=1),
            error=next((r.error for r in recs if r.outcome == "failed" and r.error), None),
            elided=[e for r in recs for e in r.elided],
        )  # fmt: skip
        rec._diffs = [d for r in recs for d in getattr(r, "_diffs", [])]  # type: ignore[attr-defined]
        _cut(results, joined, final=True)
        whole = {s: c.summary() for s, c in joined.items() if c.elided}
        if whole:  # the loop's streams as a whole: their size and digest (audited with the step)
            rec.elided.append({"command": f"{step.label} (loop of {len(recs)} items, joined)", **whole})
        registered = {
            "results": results,
            "changed": outcome == "changed",
            "failed": outcome == "failed",
            "skipped": outcome == "skipped",
            "msg": rec.msg,
        }
        if step.register:
            hr.facts[step.register] = registered
        rec._registered = registered  # type: ignore[attr-defined]
        return rec

    def _run_item(
        self,
        hr: HostRun,
        step: Step,
        variables: LazyVars,
        read_only: bool,
        phase: str,
        loop_vars: dict[str, Any] | None = None,
        index: int | None = None,
    ) -> StepRecord:
        if step.check_mode is True and not self.dry_run:  # this step is only ever planned
            return replace(self, dry_run=True)._run_item(
                hr, step, variables, read_only, phase, loop_vars, index
            )
        rec = StepRecord(phase, step.index, step.label, step.module, "ok")
        kind = kinds.get(step.module)
        if kind is None:
            rec.outcome, rec.msg = "failed", f"unknown module {step.module}"
            return rec
        item = Item(phase, variables, {}, read_only, loop_vars, index)
        try:
            with reading() as seen:
                if loop_vars is not None and not self._when(step, variables):
                    rec.outcome, rec.msg = "skipped", CONDITION_FALSE
                    return rec
                item.args = self.attempts.render_args(kind, step, variables, read_only)
                self.attempts.timing(step, item)
        except RunbookError as exc:
            if self.dry_run and unknowable(exc.message, seen.touched):
                return self._known_later(hr, step, phase, rec=rec)
            rec.outcome, rec.msg, rec.error = "failed", str(exc), "render"
            return rec
        if kind.asks_approval:
            return self._approve(hr, step, item.args, rec)
        if self.dry_run and not read_only and not kind.mutating and not kind.pure:
            # a check after changes that were not made would test the old state: show it, don't run it
            summary = self.redactor.redact(
                f"{step.module} "
                + ", ".join(f"{k}={v}" for k, v in item.args.items() if not isinstance(v, (dict, list)))
            )
            rec.outcome, rec.msg = "skipped", "dry-run: checked during the real run"
            rec.planned = [{"kind": "check", "summary": summary, "diff": ""}]
            if step.register:
                hr.facts[step.register] = Anything()  # known only at run time
            return rec
        return self.attempts.run_attempts(hr, step, kind, item, rec)

    # ------------------------------------------------------------------------------ batched
    def batch_hook(self, hr: HostRun, step: Step, item: Item, drive: Drive) -> Any:
        """How a batched Client action of this step meets the other hosts of the batch (None: it
        runs for this host alone — a fallback or undo step, run_once, delegate_to, a rollback)."""
        if (
            self.gather_peers is None
            or step.phase != step.top_phase
            or step.run_once
            or step.delegate_to
            or item.phase not in ("steps", "always", "preflight")
        ):
            return None
        key: Position = (step.index, -1 if item.index is None else item.index, item.attempt)
        phase = item.phase
        peers = self.gather_peers

        def batch(action: Any, transport: Any) -> Any:
            from runbook.execute import clients

            with self._lock:
                gather = self._gathers.setdefault((self.batch, phase, step.key, key), Gather(key))
            hr.position = key
            note = drive.on_note or (lambda line: None)
            params = dict(action.params)
            if drive.deadline is not None:  # each host's own timeout, enforced by Ansible for it
                params["timeout"] = max(1, math.ceil(drive.deadline - time.monotonic()))
            job = Job(hr.name, (params, transport, note))

            def run(jobs: list[Job], deliver: Callable[[str, Any], None]) -> dict[str, Any]:
                # stopped by the run being interrupted, not by one host's timeout (Ansible keeps
                # each host's: its task timeout)
                batch_jobs = [(j.host, *j.payload) for j in jobs]
                return clients.call_batch(action.op, batch_jobs, self.cancel, deliver)

            return gather.join(job, lambda: peers(phase), run, drive.cancel)

        return batch

    # ------------------------------------------------------------------------------ fallback
    def _falls_back(self, rec: StepRecord) -> bool:
        """A failed step runs its fallback steps; a dry-run plans them (unless the plan itself is
        broken: a template or argument that cannot render); a `when` that is false skips them too."""
        if rec.outcome == "skipped" and rec.msg.startswith(CONDITION_FALSE):
            return False
        if rec.error == "fault":  # the run is stopping (its audit or state cannot be written)
            return False
        if rec.outcome == "failed":
            return not (self.dry_run and rec.error == "render")
        return self.dry_run

    def _fallback(self, hr: HostRun, step: Step, rec: StepRecord, read_only: bool, phase: str) -> StepRecord:
        """Run the step's fallback steps. All succeed: the step is recovered (ok/changed); one fails:
        the step fails. In a dry-run the fallback steps are planned whatever the step's outcome."""
        failed = rec.outcome == "failed"
        reason = rec.msg or "failed"
        if failed:
            line = f"failed: {reason}; running {len(step.fallback)} fallback step(s)"
            self.emit("step.output", hr, step, phase=phase, data={"line": self.redactor.redact(line)})
            failure = getattr(rec, "_registered", None) or {"failed": True, "msg": reason}
            hr.facts["ansible_failed_result"] = failure
        else:  # a dry-run's plan: what failed is known only at run time
            hr.facts["ansible_failed_result"] = Anything()
        hr.facts["ansible_failed_task"] = {"name": step.label, "module": step.module}
        results: list[StepRecord] = []
        for sub in step.fallback:
            results.append(self.run_step(hr, sub, read_only=read_only, phase=phase))
            if results[-1].outcome == "failed":
                break
        bad = next((r for r in results if r.outcome == "failed"), None)
        if bad is not None:
            rec.error = rec.error if failed else bad.error
            rec.outcome = "failed"
            rec.msg = (
                f"{reason}; fallback step '{bad.name}' failed too: {bad.msg}"
                if failed
                else f"fallback step '{bad.name}' would fail: {bad.msg}"
            )
            return rec
        if failed:
            rec.outcome = "changed" if any(r.outcome == "changed" for r in results) else "ok"
            rec.msg, rec.error = f"recovered by fallback: {reason}", None
        return rec

    # ---------------------------------------------------------------------------------- records
    def _finish(
        self, hr: HostRun, step: Step, rec: StepRecord, *, ignored: bool = False, at: int | None = None
    ) -> None:
        if step.no_log:  # nothing of the step is shown, not even what a plan would run
            rec.stdout = rec.stderr = ""
            rec.msg = NO_LOG if rec.msg else ""
            rec.command = NO_LOG if rec.command else None
            rec.planned = [{"kind": p.get("kind", ""), "summary": NO_LOG, "diff": ""} for p in rec.planned]
        else:
            rec.redact(self.redactor.redact)
        hr.records.insert(len(hr.records) if at is None else at, rec)
        key = "ok" if ignored else rec.outcome
        if key in hr.stats:
            hr.stats[key] += 1
        data: dict[str, Any] = {
            "module": step.module,
            "index": step.index,
            "msg": rec.msg,
            "command": rec.command,
            "stdout": rec.stdout,
            "stderr": rec.stderr,
            "stdout_sha256": hashlib.sha256(rec.stdout.encode()).hexdigest(),
            "stderr_sha256": hashlib.sha256(rec.stderr.encode()).hexdigest(),
            "attempts": rec.attempts,
        }
        if ignored:
            data["ignored"] = True
        if rec.elided and not step.no_log:  # the whole streams' sizes and digests (kept: head+tail)
            data["elided"] = rec.elided
        if rec.error:
            data["error"] = rec.error
        if rec.planned:
            data["planned"] = rec.planned
        diffs = list(getattr(rec, "_diffs", []))
        if diffs and not step.no_log:  # --diff: what the step wrote (a no_log step shows nothing)
            data["diffs"] = [{**d, "diff": self.redactor.redact(d["diff"])} for d in diffs]
        if step.phase != step.top_phase:
            data["key"] = step.key  # a fallback (or undo) step: which one
        if rec.phase == "steps" == step.phase and (rec.outcome != "failed" or ignored) and not self.dry_run:
            # done: on disk before its step.end, so that a --resume never runs it again
            hr.state.last_completed = step.index
            self.persist(durable=False, progress=True)
        self.emit(
            "step.end", hr, step, phase=rec.phase, outcome=rec.outcome if not ignored else "failed",
            rc=rec.rc, duration=rec.duration, data=data,
        )  # fmt: skip

    def _when(self, step: Step, variables: Mapping[str, Any]) -> bool:
        """All of the step's conditions hold. In a dry-run, a condition made of a value the plan does
        not have (a step it did not run registered it) may hold: the step is planned."""
        for cond in step.when:
            with reading():
                try:
                    holds = self.templar.evaluate(cond, variables, step.loc("when"))
                except RunbookError as exc:
                    if self.dry_run and unknowable(exc.message, touched_now()):
                        continue
                    raise
                if not holds and not (self.dry_run and touched_now()):
                    return False
        return True

    def _known_later(
        self, hr: HostRun, step: Step, phase: str, what: str = "", rec: StepRecord | None = None
    ) -> StepRecord:
        """A dry-run's step that needs a value only the run has: shown as such, the plan goes on."""
        rec = rec or StepRecord(phase, step.index, step.label, step.module, "skipped")
        rec.outcome = "skipped"
        rec.msg = KNOWN_AT_RUN_TIME.replace("known", f"{what} known") if what else KNOWN_AT_RUN_TIME
        if step.register:
            hr.facts[step.register] = Anything()
        return rec

    def loop_items(self, step: Step, variables: Mapping[str, Any]) -> list[Any] | None:
        if step.loop is None:
            return None
        items = self.templar.render(step.loop, variables, step.loc("loop"))
        if isinstance(items, str):
            raise RenderError(f"loop must be a list, got the string {items[:80]!r}", location=step.location)
        if isinstance(items, Mapping):
            raise RenderError(
                "loop must be a list (use '| dict2items' for a mapping)", location=step.location
            )
        if isinstance(items, bytes | bytearray) or not isinstance(items, Iterable):
            raise RenderError(
                f"loop must be a list, got {type(items).__name__} {str(items)[:80]!r}", location=step.location
            )
        return list(items)

    def _approve(self, hr: HostRun, step: Step, args: dict[str, Any], rec: StepRecord) -> StepRecord:
        if self.dry_run:
            rec.msg = "would ask for approval: " + str(args.get("prompt", step.label))
            return rec
        if self.approve is None:
            rec.outcome, rec.msg = "failed", "approval required but no way to ask (rerun with --yes)"
            rec.error = "refused"
            return rec
        ok, who, details = self.approve(hr, step, args)
        self.emit(
            "approval",
            hr,
            step,
            outcome="approved" if ok else "denied",
            data={"approved_by": who, "prompt": str(args.get("prompt", step.label)), **details},
        )
        rec.outcome = "ok" if ok else "failed"
        rec.msg = f"approved by {who}" if ok else f"not approved ({who})"
        rec.error = None if ok else "refused"
        return rec


def _cut(results: list[dict[str, Any]], joined: Mapping[str, JoinedCapture], final: bool = False) -> None:
    """What a loop registers holds each item's output as the joined capture keeps it."""
    for stream, cap in joined.items():
        for n in cap.changed(final):
            res = results[n] if n < len(results) else None
            if res is None or not isinstance(res.get(stream), str):
                continue
            res[stream] = cap.item(n)
            if isinstance(res.get(f"{stream}_lines"), list):
                res[f"{stream}_lines"] = res[stream].splitlines()
