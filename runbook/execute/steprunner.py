"""Run one step on one host: when, loop, render, retries/until with backoff, timeout, changed_when/
failed_when, register, no_log, snapshots — and the events for all of it."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from runbook.errors import RenderError, RunbookError, TransportError
from runbook.execute.driver import Cancelled, Drive
from runbook.execute.events import Event, EventBus
from runbook.execute.hostctx import HostRun, StepRecord
from runbook.execute.state import Entry
from runbook.model.runbook import Step
from runbook.plan.steps import base as kinds
from runbook.plan.steps.base import Outcome, StepContext
from runbook.plan.validate import Anything, coerce
from runbook.render.filters import to_bool
from runbook.render.secrets import MASK, Redactor
from runbook.render.templar import LazyVars, Templar

NO_LOG = "(output hidden: no_log)"
PURE_KINDS = frozenset({"set_fact", "debug", "assert", "fail", "approve"})


@dataclass
class Attempt:
    outcome: Outcome
    planned: list[dict[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    render_error: bool = False  # the step's own rendering (a template file) failed


@dataclass
class _Once:
    """The shared result of a run_once step within one batch."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    host: str = ""
    record: StepRecord | None = None
    registered: Any = None


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
    persist: Callable[[], None] = lambda: None
    approve: Callable[[HostRun, Step, dict[str, Any]], tuple[bool, str]] | None = None
    delegate: Callable[[str], HostRun] | None = None
    active: dict[str, tuple[Drive, Any]] = field(default_factory=dict)
    batch: Any = None  # set by the engine per phase/batch: run_once is once per batch
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _once: dict[tuple[Any, ...], _Once] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------ events
    def emit(self, kind: str, hr: HostRun | None, step: Step | None = None, **kw: Any) -> None:
        name, phase = kw.pop("step_name", None), kw.pop("phase", None)
        self.bus.emit(
            Event(
                kind=kind,
                run_id=self.run_id,
                host=hr.name if hr else None,
                step=step.label if step else name,
                phase=step.phase if step else phase,
                **kw,
            )
        )

    # ---------------------------------------------------------------------------------- one step
    def run_step(
        self, hr: HostRun, step: Step, *, read_only: bool = False, phase: str | None = None
    ) -> StepRecord:
        """Run a step (all loop items) on a host and return its record. Never raises for step
        failures; raises Cancelled when the run is interrupted."""
        if not step.run_once:
            return self._run_step(hr, step, read_only=read_only, phase=phase)
        key = (self.batch, phase or step.phase, step.index)
        with self._lock:
            once = self._once.setdefault(key, _Once())
        with once.lock:  # the first host of the batch to get here runs it; the others wait
            if self.cancel.is_set():
                raise Cancelled("interrupted")
            if once.record is None:
                rec = self._run_step(hr, step, read_only=read_only, phase=phase)
                once.host, once.record = hr.name, rec
                once.registered = hr.facts.get(step.register) if step.register else None
                return rec
        first = once.record
        if step.register and once.registered is not None:
            hr.facts[step.register] = once.registered
        failed = first.outcome == "failed"
        rec = StepRecord(
            phase or step.phase, step.index, step.label, step.module, "failed" if failed else "ok",
            rc=first.rc, msg=f"run_once: {'failed' if failed else 'ran'} on {once.host}"
            + (f": {first.msg}" if failed and first.msg else ""),
        )  # fmt: skip
        self._finish(hr, step, rec, emit_start=True)
        return rec

    def _run_step(self, hr: HostRun, step: Step, *, read_only: bool, phase: str | None) -> StepRecord:
        phase = phase or step.phase
        start = time.monotonic()
        variables = hr.vars(step.vars)
        try:
            if step.loop is None and not self._when(step, variables):  # with a loop: per item
                rec = StepRecord(phase, step.index, step.label, step.module, "skipped", msg="condition false")
                if step.register:  # as Ansible does: `x is skipped` works afterwards
                    hr.facts[step.register] = {
                        "skipped": True, "changed": False, "failed": False, "msg": "condition false",
                    }  # fmt: skip
                self._finish(hr, step, rec, emit_start=True)
                return rec
            items = self._loop_items(step, variables)
        except RunbookError as exc:
            rec = StepRecord(
                phase, step.index, step.label, step.module, "failed", msg=self.redactor.redact(str(exc))
            )
            rec.error = "render"
            self._finish(hr, step, rec, emit_start=True)
            return rec
        self.emit("step.start", hr, step, data={"module": step.module, "index": step.index})
        if items is None:
            rec = self._run_item(hr, step, variables, None, read_only)
        else:
            results, recs = [], []
            for item in items:
                loop_vars = {step.loop_var: item}
                r = self._run_item(hr, step, hr.vars(step.vars, loop_vars), loop_vars, read_only)
                recs.append(r)
                status = {
                    "changed": r.outcome == "changed",
                    "failed": r.outcome == "failed",
                    "skipped": r.outcome == "skipped",
                    "msg": r.msg,
                }
                results.append({**status, **getattr(r, "_registered", {}), step.loop_var: item})
                if r.outcome == "failed" and not step.ignore_errors:
                    break
            outcome = (
                "failed"
                if any(r.outcome == "failed" for r in recs)
                else (
                    "changed"
                    if any(r.outcome == "changed" for r in recs)
                    else ("skipped" if recs and all(r.outcome == "skipped" for r in recs) else "ok")
                )
            )
            rec = StepRecord(
                phase, step.index, step.label, step.module, outcome,
                rc=next((r.rc for r in recs if r.outcome == "failed"), recs[-1].rc if recs else None),
                msg="; ".join(r.msg for r in recs if r.msg)[:2000],
                command="\n".join(r.command for r in recs if r.command) or None,
                stdout="".join(r.stdout for r in recs), stderr="".join(r.stderr for r in recs),
                planned=[p for r in recs for p in r.planned], attempts=max((r.attempts for r in recs), default=1),
                error=next((r.error for r in recs if r.outcome == "failed" and r.error), None),
            )  # fmt: skip
            if step.register:
                hr.facts[step.register] = {
                    "results": results,
                    "changed": outcome == "changed",
                    "failed": outcome == "failed",
                    "skipped": outcome == "skipped",
                    "msg": rec.msg,
                }
        rec.duration = time.monotonic() - start
        if rec.outcome == "failed" and step.ignore_errors:
            rec.msg = (rec.msg + " (ignored)").strip()
            self._finish(hr, step, rec, ignored=True)
            rec.outcome = "ok"
            return rec
        self._finish(hr, step, rec)
        return rec

    def _finish(
        self,
        hr: HostRun,
        step: Step,
        rec: StepRecord,
        *,
        emit_start: bool = False,
        ignored: bool = False,
    ) -> None:
        if emit_start:
            self.emit("step.start", hr, step, data={"module": step.module, "index": step.index})
        if step.no_log:
            rec.stdout = rec.stderr = ""
            rec.msg = NO_LOG if rec.msg else ""
            rec.command = NO_LOG if rec.command else None
        else:
            rec.msg = self.redactor.redact(rec.msg)
            rec.stdout = self.redactor.redact(rec.stdout)
            rec.stderr = self.redactor.redact(rec.stderr)
            rec.command = self.redactor.redact(rec.command) if rec.command else None
        hr.records.append(rec)
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
        if rec.error:
            data["error"] = rec.error
        if rec.planned:
            data["planned"] = rec.planned
        self.emit(
            "step.end",
            hr,
            step,
            outcome=rec.outcome if not ignored else "failed",
            rc=rec.rc,
            duration=rec.duration,
            data=data,
        )

    def _when(self, step: Step, variables: Mapping[str, Any]) -> bool:
        return all(self.templar.evaluate(c, variables, step.loc("when")) for c in step.when)

    def _loop_items(self, step: Step, variables: Mapping[str, Any]) -> list[Any] | None:
        if step.loop is None:
            return None
        items = self.templar.render(step.loop, variables, step.loc("loop"))
        if isinstance(items, str):
            raise RenderError(f"loop must be a list, got the string {items[:80]!r}", location=step.location)
        if isinstance(items, Mapping):
            raise RenderError(
                "loop must be a list (use '| dict2items' for a mapping)", location=step.location
            )
        return list(items)

    # ------------------------------------------------------------------------------- one item
    def _run_item(
        self, hr: HostRun, step: Step, variables: LazyVars, loop_vars: dict | None, read_only: bool
    ) -> StepRecord:
        phase = step.phase
        rec = StepRecord(phase, step.index, step.label, step.module, "ok")
        kind = kinds.get(step.module)
        if kind is None:
            rec.outcome, rec.msg = "failed", f"unknown module {step.module}"
            return rec
        try:
            if loop_vars is not None and not self._when(step, variables):
                rec.outcome, rec.msg = "skipped", "condition false"
                return rec
            args = self.render_args(kind, step, variables, read_only)
            retries = (
                self._num(step.retries, variables, step)
                if step.retries is not None
                else (3 if step.until else 0)
            )
            delay = float(self._num(step.delay, variables, step))
            backoff = float(self._num(step.backoff, variables, step))
            timeout = self._num(step.timeout, variables, step) if step.timeout is not None else None
        except RunbookError as exc:
            rec.outcome, rec.msg, rec.error = "failed", str(exc), "render"
            return rec
        if step.module == "approve":
            return self._approve(hr, step, args, rec)
        if self.dry_run and not read_only and not kind.mutating and step.module not in PURE_KINDS:
            # a check after changes that were not made would test the old state: show it, don't run it
            summary = self.redactor.redact(
                f"{step.module} "
                + ", ".join(f"{k}={v}" for k, v in args.items() if not isinstance(v, (dict, list)))
            )
            rec.outcome, rec.msg = "skipped", "dry-run: checked during the real run"
            rec.planned = [{"kind": "check", "summary": summary, "diff": ""}]
            if step.register:
                hr.facts[step.register] = Anything()  # known only at run time
            return rec
        entry: Entry | None = None
        target = self.delegate(step.delegate_to) if (step.delegate_to and self.delegate) else hr
        attempt_no = 0
        while True:
            attempt_no += 1
            attempt, entry = self._attempt(
                hr, target, kind, step, args, variables, read_only, timeout, entry, loop_vars
            )
            out = attempt.outcome
            if attempt.render_error and not out.ok:
                rec.error = "render"
            registered = out.registered()
            for stream in ("stdout", "stderr"):  # as Ansible registers them: no trailing newline
                if isinstance(registered.get(stream), str):
                    registered[stream] = registered[stream].rstrip("\r\n")
            until_ok, judged = True, True
            try:
                ok, changed = self._judge(step, out, registered, variables)
            except RunbookError as exc:  # a failed_when/changed_when that cannot be evaluated
                ok, changed, judged = False, out.changed, False
                out = Outcome.failure(
                    str(exc), rc=out.rc, stdout=out.stdout, stderr=out.stderr, command=out.command
                )
                rec.error = "render"
            registered.update(failed=not ok, changed=changed)
            if step.register and loop_vars is None:
                hr.facts[step.register] = registered
            if "ansible_facts" in out.data and ok:
                hr.facts.update(out.data["ansible_facts"])
            if ok and step.until:
                scope = variables.child(
                    ({step.register: registered} if step.register else {}, True),
                    ({"result": registered}, True),
                )
                try:
                    until_ok = all(self.templar.evaluate(c, scope, step.loc("until")) for c in step.until)
                except RunbookError as exc:
                    ok, judged, rec.error = False, False, "render"
                    out = Outcome.failure(
                        str(exc), rc=out.rc, stdout=out.stdout, stderr=out.stderr, command=out.command
                    )
            done = (
                not judged
                or (ok and until_ok)
                or attempt_no > retries
                or self.dry_run
                or self.cancel.is_set()
            )
            if done:
                break
            why = out.msg or ("until condition not met" if ok else "failed")
            self.emit(
                "step.output",
                hr,
                step,
                data={
                    "line": self.redactor.redact(
                        f"attempt {attempt_no}/{retries + 1} failed ({why}); retrying in {delay:g}s"
                    )
                },
            )
            if self.cancel.wait(delay):
                raise Cancelled("interrupted")
            delay *= backoff
        rec.attempts = attempt_no
        rec.rc, rec.stdout, rec.stderr = out.rc, out.stdout, out.stderr
        rec.command = out.command or ("\n".join(attempt.commands) if attempt.commands else None)
        rec.planned = attempt.planned
        final_ok = ok and until_ok
        rec.msg = out.msg if final_ok or out.msg else "until condition not met"
        if ok and not until_ok:
            rec.msg = f"until condition not met after {attempt_no} attempt(s)" + (
                f": {out.msg}" if out.msg else ""
            )
        rec.outcome = (
            "failed" if not final_ok else ("skipped" if out.skipped else ("changed" if changed else "ok"))
        )
        if changed and not self.dry_run:
            hr.changed_anything = True
        if entry is not None:
            entry.status = rec.outcome
            entry.changed = changed or entry.changed
            self.persist()
        elif changed and step.undo is not None and not self.dry_run:
            hr.state.entries.append(
                Entry(
                    phase,
                    step.index,
                    step.label,
                    step.module,
                    None,
                    item=loop_vars,
                    status=rec.outcome,
                    changed=True,
                    has_undo_step=True,
                )
            )
            self.persist()
        if step.no_log and not self.dry_run:
            self.redactor.add(line for line in out.stdout.splitlines() if len(line.strip()) >= 6)
        rec._registered = registered  # type: ignore[attr-defined]
        return rec

    def render_args(
        self, kind: kinds.StepKind, step: Step, variables: LazyVars, read_only: bool
    ) -> dict[str, Any]:
        raw = kind.normalize(step.args)
        if step.phase == "preflight" and step.module in ("shell", "command") and isinstance(raw, dict):
            raw = {"changes": False, **raw}
        args = self.templar.render(raw, variables, step.location)
        args = kind.normalize(args)
        if step.changes is not None and step.module in ("shell", "command"):
            args = {**args, "changes": to_bool(step.changes)}
        args = coerce(args, kind.schema)
        try:
            jsonschema.validate(args, kind.schema)
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path) or step.module
            loc = step.arg_locations.get(str(exc.absolute_path[0])) if exc.absolute_path else step.location
            raise RunbookError(
                f"{step.module}: invalid argument {where}: {self.redactor.redact(exc.message)}",
                location=loc or step.location,
            ) from None
        return args

    def _num(self, value: Any, variables: Mapping[str, Any], step: Step) -> float | int:
        v = self.templar.render(value, variables, step.location)
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise RenderError(f"expected a number, got {v!r}", location=step.location) from None
        return int(f) if f.is_integer() else f

    def _judge(self, step: Step, out: Outcome, registered: dict, variables: LazyVars) -> tuple[bool, bool]:
        ok, changed = out.ok, out.changed
        if step.failed_when is None and step.changed_when is None:
            return ok, changed
        scope = variables.child(
            ({step.register: registered} if step.register else {}, True), ({"result": registered}, True)
        )
        if step.failed_when is not None:
            ok = (
                not any(self.templar.evaluate(c, scope, step.location) for c in step.failed_when)
                if step.failed_when
                else True
            )
        if step.changed_when is not None:
            changed = (
                all(self.templar.evaluate(c, scope, step.location) for c in step.changed_when)
                if step.changed_when
                else False
            )
        return ok, changed

    def _attempt(
        self,
        hr: HostRun,
        target: HostRun,
        kind: kinds.StepKind,
        step: Step,
        args: dict[str, Any],
        variables: LazyVars,
        read_only: bool,
        timeout: float | None,
        entry: Entry | None,
        loop_vars: dict | None,
    ) -> tuple[Attempt, Entry | None]:
        render_failed: list[bool] = []

        def render_str(text: str) -> Any:
            try:
                return self.templar.render_str(text, variables, None)
            except RunbookError:
                render_failed.append(True)
                raise

        ctx = StepContext(
            host=target.name,
            vars=variables,
            project_dir=self.project_dir,
            run_id=self.run_id,
            dry_run=self.dry_run and not read_only,
            become=bool(step.become) if step.become is not None else target.spec.become,
            render_str=render_str,
            loader_dirs=self.loader_dirs,
        )
        cancel = threading.Event()
        holder: dict[str, Entry | None] = {"entry": entry}

        def on_snapshot(data: dict[str, Any]) -> None:
            if holder["entry"] is None:
                holder["entry"] = Entry(
                    step.phase,
                    step.index,
                    step.label,
                    step.module,
                    args,
                    item=loop_vars,
                    has_undo_step=step.undo is not None,
                    delegate_to=target.name if target is not hr else None,
                )
                hr.state.entries.append(holder["entry"])
            holder["entry"].snapshots.append(data)
            self.persist()
            self.emit(
                "snapshot",
                hr,
                step,
                data={
                    "module": step.module,
                    "keys": sorted(data),
                    "sha256": hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest(),
                },
            )

        try:
            transport = target.transport()
        except TransportError as exc:
            hr.unreachable = target is hr
            return Attempt(Outcome.failure(f"unreachable: {exc}")), holder["entry"]
        drive = Drive(
            transport=transport,
            dry_run=self.dry_run and not read_only,
            read_only=read_only,
            cancel=cancel,
            on_snapshot=on_snapshot,
            on_note=lambda line: self.emit("step.output", hr, step, data={"line": line}),
            redact=self.redactor.redact,
            deadline=time.monotonic() + float(timeout) if timeout else None,
        )
        if self.cancel.is_set():
            raise Cancelled("interrupted")
        with self._lock:
            self.active[hr.name] = (drive, transport)
        timer = None
        if timeout:

            def expire() -> None:
                # commands carry the deadline themselves (the transport kills exactly that one, even
                # on a transport shared through delegate_to); this stops waits, sleeps and clients
                drive.timed_out = True
                cancel.set()

            timer = threading.Timer(float(timeout), expire)
            timer.daemon = True
            timer.start()
        try:
            out = drive.run(kind.run(args, ctx))
        except Cancelled:
            if drive.timed_out:
                out = Outcome.failure(f"timed out after {timeout:g}s", rc=124)
            else:
                raise
        except TransportError as exc:
            out = Outcome.failure(f"connection to {target.name} lost: {exc.message}")
        except RunbookError as exc:
            out = Outcome.failure(str(exc))
        finally:
            if timer:
                timer.cancel()
            with self._lock:
                self.active.pop(hr.name, None)
        if drive.timed_out and not out.ok:
            out = Outcome.failure(
                f"timed out after {timeout:g}s",
                rc=124,
                stdout=out.stdout,
                stderr=out.stderr,
                command=out.command,
            )
        if self.cancel.is_set():
            raise Cancelled("interrupted")
        planned = [{"kind": p.kind, "summary": p.summary, "diff": p.diff} for p in drive.planned]
        attempt = Attempt(out, planned, drive.commands, drive.snapshots, render_error=bool(render_failed))
        return attempt, holder["entry"]

    def _approve(self, hr: HostRun, step: Step, args: dict[str, Any], rec: StepRecord) -> StepRecord:
        if self.dry_run:
            rec.msg = "would ask for approval: " + str(args.get("prompt", step.label))
            return rec
        if self.approve is None:
            rec.outcome, rec.msg = "failed", "approval required but no way to ask (rerun with --yes)"
            return rec
        ok, who = self.approve(hr, step, args)
        self.emit(
            "approval",
            hr,
            step,
            outcome="approved" if ok else "denied",
            data={"approved_by": who, "prompt": str(args.get("prompt", step.label))},
        )
        rec.outcome = "ok" if ok else "failed"
        rec.msg = f"approved by {who}" if ok else f"not approved ({who})"
        return rec


def masked(value: Any) -> Any:
    return MASK if value else value
