"""Rollback of one host: undo what it changed, newest first — a step's own ``undo:`` step when it has
one, else its module's undo from the snapshots — or run the runbook's explicit rollback list. And the
operator's choice after Ctrl-C (roll back what changed, or keep it and say how to roll back later)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from runbook.errors import RunbookError
from runbook.execute import faults
from runbook.execute.attempts import privilege, privilege_asked
from runbook.execute.blocks import handler_names
from runbook.execute.driver import Aborted, Cancelled, Drive
from runbook.execute.hostctx import HostRun, StepRecord
from runbook.execute.runresult import RunOptions
from runbook.execute.state import Entry, RunState
from runbook.execute.steprunner import StepRunner
from runbook.kinds import base as kinds
from runbook.kinds import undo as undo_rules
from runbook.kinds.arguments import coerce
from runbook.kinds.base import Outcome, StepContext
from runbook.model.runbook import Runbook, Step
from runbook.render.secrets import MASK, Redactor
from runbook.render.templar import Literal, Templar


class RunControl(Protocol):
    """What a rollback asks of the run it belongs to (the engine is one): its hosts, its state and
    its controls. Nothing of how the run is driven."""

    run_id: str
    run_info: dict[str, Any]
    cancel: threading.Event
    state: RunState

    @property
    def hosts(self) -> Mapping[str, HostRun]: ...

    def host_run(self, name: str) -> HostRun: ...

    def stop_active(self) -> None: ...

    def persist(self) -> None: ...

    def parallel(self, hosts: Sequence[str], fn: Callable[[HostRun], Any]) -> None: ...


class Rollback:
    """Undo what a run changed on a host, newest first, and check that the restored state holds.

    Given its collaborators: the step runner that runs each undo, the templar and redactor of the
    run, the runbook (its rollback policy and steps), the run's options and the run's controls."""

    def __init__(
        self,
        runner: StepRunner,
        templar: Templar,
        redactor: Redactor,
        runbook: Runbook,
        options: RunOptions,
        run: RunControl,
    ):
        self.runner, self.templar, self.redactor = runner, templar, redactor
        self.rb, self.opt, self.run = runbook, options, run
        self._records: dict[int, StepRecord] = {}  # entry -> its undo record (verify notes go there)

    def host(self, hr: HostRun, reason: str | None = None) -> None:
        """Roll one host back (after its failure, another host's with rollback_scope all, an
        interrupt, or `runbook rollback`)."""
        if self.rb.rollback == "none":
            return
        entries = [x for x in hr.state.entries if x.phase == "steps" and x.status != "rolled_back"]
        explicit = isinstance(self.rb.rollback, tuple)
        if not entries and not explicit:
            return  # nothing changed, nothing to roll back: the run is "failed", not "rolled_back"
        self.runner.emit(
            "rollback.start", hr, None, phase="rollback",
            data={"reason": self.redactor.redact(reason or hr.failure)},
        )  # fmt: skip
        ok, gave_up = True, False
        hr.notified.clear()  # what the failed run's steps notified is not run: their change is undone
        self.run.run_info["status"] = "rolling_back"
        if isinstance(self.rb.rollback, tuple):
            for step in self.rb.rollback:
                rec = self.runner.run_step(hr, step, phase="rollback")
                ok = ok and rec.outcome != "failed"
                if rec.outcome == "failed" and self._gave_up(hr, hr, []):
                    gave_up = True
                    break
            for x in entries:
                x.status = "rolled_back" if ok else "rollback_failed"
        else:
            todo = list(reversed(entries))
            for i, x in enumerate(todo):
                done = self.undo_entry(hr, x, self.rb.find_step(x.step_key))
                ok = done and ok
                where = self.run.host_run(x.delegate_to) if x.delegate_to else hr
                if not done and self._gave_up(hr, where, todo[i + 1 :]):
                    gave_up = True
                    break
        if not gave_up:  # notify on undo: the handlers of the steps whose change was undone
            ok = self._handlers_after_undo(hr, entries) and ok
        # "rolled back" only once the restored state is checked (also after a failure: every
        # difference is named, not only the first) -- unless the host could not be reached at all
        if not gave_up:
            ok = self.verify(hr, [x for x in entries if x.status == "rolled_back"]) and ok
        self.run.persist()
        hr.rollback_status = "ok" if ok else "failed"
        hr.state.status = "rolled_back" if ok else "rollback_failed"
        self.runner.emit(
            "rollback.end", hr, None, phase="rollback", outcome="ok" if ok else "failed",
            data={"problems": list(hr.rollback_problems)},
        )  # fmt: skip

    def _handlers_after_undo(self, hr: HostRun, entries: list[Entry]) -> bool:
        """Run, once each, the handlers notified by the steps this rollback undid (a proxy reloaded
        once its config file is restored); an explicit rollback: list notifies as its steps say."""
        undone = [self.rb.find_step(x.step_key) for x in entries if x.status == "rolled_back"]
        names = handler_names(undone)
        if not names and not hr.notified:
            return True
        hr.notified.update(dict.fromkeys(names))
        line = "running the handlers notified by the undone steps: " + ", ".join(hr.notified)
        self.runner.emit("step.output", hr, None, phase="rollback", data={"line": line})
        return self.runner.blocks.flush_handlers(hr, phase="rollback") is None

    def _gave_up(self, hr: HostRun, where: HostRun, rest: list[Entry]) -> bool:
        """After a failed undo: if ``where`` cannot be reached (connection lost and a new one
        refused or unanswered: each bounded by the SSH timeouts), give up on this host at once —
        the rest of its entries are reported not undone — so the other hosts go on."""
        why = where.down
        if not why:
            return False
        note = f"not undone: {where.name} is unreachable ({why})"
        for x in rest:
            x.status = "rollback_failed"
            rec = StepRecord("rollback", x.index, f"undo: {x.name}", x.module, "failed", msg=self.redactor.redact(note))
            hr.records.append(rec)
            hr.stats["failed"] += 1
            self.runner.emit(
                "rollback.step", hr, None, phase="rollback", outcome="failed",
                data={"step": x.name, "module": x.module, "index": x.index, "msg": rec.msg},
            )  # fmt: skip
        hr.failure = f"{hr.failure}; rollback gave up: {where.name} unreachable ({why})".lstrip("; ")
        if where is hr:
            hr.unreachable = True  # (its always: steps are not tried either)
            hr.stats["unreachable"] = 1
        return True

    def undo_entry(self, hr: HostRun, entry: Entry, step: Step | None) -> bool:
        """Undo one entry: the step's own undo: step wins over the module's snapshot-based undo. A
        change that neither can undo is reported as NOT undone (the rollback fails: a human must act),
        unless the step declares it needs no undo (runbook.kinds.undo)."""
        kind = kinds.get(entry.module)
        start = time.monotonic()
        outcome, msg = "rolled_back", ""
        try:
            declared = undo_rules.no_undo_reason(step) if step is not None else None
            if step is not None and step.undo is not None:
                outcome, msg = self._undo_step(hr, entry, step)
            elif step is not None and step.undo_none is not None:  # the runbook says: leave it
                outcome, msg = "skipped", f"needs no undo: {declared}"
            elif entry.snapshots and kind is not None and kind.can_undo:
                outcome, msg = self._undo_snapshots(hr, entry, step, kind)
            elif not entry.changed:
                outcome, msg = "skipped", "nothing to undo"
            elif declared is not None:
                outcome, msg = "skipped", f"needs no undo: {declared}"
            else:
                where = "the step is gone from the runbook" if step is None else "it has no undo:"
                outcome = "failed"
                msg = f"NOT undone: {entry.module} changed the host and {where}; {undo_rules.DECLARE_HINT}"
        except (RunbookError, Cancelled) as exc:
            outcome, msg = "failed", str(exc)
        except Exception as exc:  # an undo's unexpected error is that undo's failure (exit 4)
            outcome, msg = "failed", faults.describe(exc, self.redactor.redact, f"undo {entry.name} on {hr.name}")
        duration = time.monotonic() - start
        entry.status = "rolled_back" if outcome in ("rolled_back", "skipped") else "rollback_failed"
        if outcome == "failed":
            on = entry.delegate_to or hr.name
            hr.rollback_problems.append(f"{on}: step '{entry.name}': {self.redactor.redact(msg)}")
        rec = StepRecord(
            "rollback", entry.index, f"undo: {entry.name}", entry.module, outcome,
            duration=duration, msg=self.redactor.redact(msg),
        )  # fmt: skip
        hr.records.append(rec)
        self._records[id(entry)] = rec
        if outcome == "rolled_back":
            hr.stats["rolled_back"] += 1
        elif outcome == "failed":
            hr.stats["failed"] += 1
        self.runner.emit(
            "rollback.step", hr, None, phase="rollback", outcome=outcome, duration=duration,
            data={"step": entry.name, "module": entry.module, "index": entry.index, "msg": rec.msg},
        )  # fmt: skip
        return outcome != "failed"

    def verify(self, hr: HostRun, entries: list[Entry]) -> bool:
        """Check what the undone entries' kinds can check: each thing (a path, a compose project, a
        migrations table) once, against its oldest snapshot in the run (what it was before). A
        difference fails the rollback, named host, step, expected vs found."""
        todo: dict[tuple[str, str], tuple[Entry, Step | None, kinds.StepKind, dict[str, Any]]] = {}
        for n, entry in enumerate(entries):  # oldest first: the first snapshot of a thing wins
            kind = kinds.get(entry.module)
            if kind is None or not kind.can_verify_undo or not entry.snapshots:
                continue
            step = self.rb.find_step(entry.step_key)
            if step is not None and step.undo_none is not None and step.undo is None:
                continue  # left as it is on purpose: nothing to check
            for i, snap in enumerate(entry.snapshots):
                try:
                    target = kind.undo_target(self._args(hr, entry, step, kind), snap)
                except (RunbookError, KeyError, TypeError):
                    target = None
                key = (entry.delegate_to or hr.name, target or f"#{n}.{i}")
                todo.setdefault(key, (entry, step, kind, snap))
        ok = True
        for entry, step, kind, snap in todo.values():
            start = time.monotonic()
            try:
                where, args, ctx, priv = self._context(hr, entry, step, kind)
                out = self._drive(
                    hr, where, kind.verify_undo(args, snap, ctx), f"verify: {entry.name}", priv
                )
                good, msg = out.ok, out.msg
            except (RunbookError, Cancelled) as exc:
                good, msg = False, f"could not be checked: {exc}"
            msg = self.redactor.redact(msg)
            duration = time.monotonic() - start
            undo_rec = self._records.get(id(entry))
            if good:
                if undo_rec is not None:
                    undo_rec.msg = (undo_rec.msg + "; " if undo_rec.msg else "") + f"checked: {msg}"
            else:
                ok = False
                entry.status = "rollback_failed"
                on = entry.delegate_to or hr.name
                problem = f"{on}: step '{entry.name}' ({entry.module}) is not as before the run: {msg}"
                hr.rollback_problems.append(problem)
                hr.records.append(
                    StepRecord(
                        "rollback", entry.index, f"verify: {entry.name}", entry.module, "failed",
                        duration=duration, msg=f"not as before the run: {msg}",
                    )
                )  # fmt: skip
                hr.stats["failed"] += 1
            self.runner.emit(
                "rollback.verify", hr, None, phase="rollback", outcome="ok" if good else "failed",
                duration=duration,
                data={"step": entry.name, "module": entry.module, "index": entry.index, "msg": msg},
            )  # fmt: skip
        return ok

    def _undo_step(self, hr: HostRun, entry: Entry, step: Step) -> tuple[str, str]:
        assert step.undo is not None
        undo = step.undo
        if step.delegate_to and not undo.delegate_to:  # undo where the step ran
            undo = replace(undo, delegate_to=step.delegate_to)
        loop = self._loop_vars(hr, entry, step) or {}
        if step.vars or loop:  # the undo sees the step's vars and its loop item
            # the item is data (often a registered result): it must not be rendered as a template
            undo = replace(undo, vars={**step.vars, **undo.vars, **{k: Literal(v) for k, v in loop.items()}})
        rec = self.runner.run_step(hr, undo, phase="rollback")
        hr.records[:] = [r for r in hr.records if r is not rec]  # recorded as the original's rollback
        hr.stats[rec.outcome] = max(0, hr.stats.get(rec.outcome, 0) - 1)
        return ("rolled_back" if rec.outcome != "failed" else "failed"), rec.msg

    def _context(
        self, hr: HostRun, entry: Entry, step: Step | None, kind: kinds.StepKind
    ) -> tuple[HostRun, dict[str, Any], StepContext, Any]:
        """Where the entry's step ran, the arguments it ran with, a context to undo it there, and
        who its commands run as (RunbookError when that cannot be rendered)."""
        where = self.run.host_run(entry.delegate_to) if entry.delegate_to else hr
        variables = hr.vars(step.vars if step else None, self._loop_vars(hr, entry, step))
        args = self.undo_args(entry, step, kind, variables)
        asked = privilege_asked(self.templar, step, variables)  # RunbookError: the caller's failure
        priv = privilege(self.templar, step, variables) if asked else None
        ctx = StepContext(
            host=where.name,
            vars=variables,
            project_dir=self.opt.project_dir,
            run_id=self.run.run_id,
            become=asked,
            render_str=lambda t: self.templar.render_str(t, variables),
            loader_dirs=self.runner.loader_dirs,
            pinned=self.runner.pinned,
        )
        return where, args, ctx, priv

    def _args(self, hr: HostRun, entry: Entry, step: Step | None, kind: kinds.StepKind) -> dict[str, Any]:
        variables = hr.vars(step.vars if step else None, self._loop_vars(hr, entry, step))
        return self.undo_args(entry, step, kind, variables)

    def _drive(
        self, hr: HostRun, where: HostRun, gen: kinds.StepGen, what: str, priv: Any = None
    ) -> Outcome:
        """Run an undo's (or a check's) actions where the step ran (its delegate_to host), its
        commands tagged as one in-flight attempt (runbook.execute.leftovers)."""
        token = self.runner.inflight.start(where.name, what)
        try:
            drive = Drive(
                transport=where.transport(),
                redact=self.redactor.redact,
                on_note=lambda line: self.runner.emit("step.output", hr, None, data={"line": line}),
                env=self.runner.inflight.env(self.run.run_id, token),
                privilege=priv,
            )
            return drive.run(gen)
        finally:
            self.runner.inflight.end(token)

    def _undo_snapshots(
        self, hr: HostRun, entry: Entry, step: Step | None, kind: kinds.StepKind
    ) -> tuple[str, str]:
        try:
            where, args, ctx, priv = self._context(hr, entry, step, kind)
        except RunbookError as exc:
            return "failed", str(exc)
        msg = ""
        for snap in reversed(entry.snapshots):
            out = self._drive(hr, where, kind.undo(args, snap, ctx), f"undo: {entry.name}", priv)
            msg = out.msg
            if not out.ok:
                return "failed", msg
        return "rolled_back", msg

    def undo_args(
        self, entry: Entry, step: Step | None, kind: kinds.StepKind, variables: Any
    ) -> dict[str, Any]:
        """The arguments the step ran with: this run's (in memory); else, from the state, the ones that
        ran, each masked secret rendered again from the same place in the arguments as written (only
        those: a registered variable used elsewhere in the arguments is gone after the run)."""
        if entry.rendered is not None:
            return entry.rendered
        if entry.ran_args is not None and not _has_mask(entry.ran_args):
            return entry.ran_args
        raw = entry.args
        if step is not None and step.module == entry.module and (raw is None or _has_mask(raw)):
            raw = step.args  # a literal secret was masked in the state: the runbook still has it
        where = step.location if step is not None else None
        if entry.ran_args is None:  # a state file from before ran_args: render everything again
            return kind.normalize(self.templar.render(kind.normalize(raw), variables, where))
        args = self._fill(entry.ran_args, kind.normalize(raw), variables, where)
        return coerce(args, kind.schema)

    def _fill(self, ran: Any, raw: Any, variables: Any, where: Any) -> Any:
        """``ran`` with its masked parts rendered again from the same place in ``raw``."""
        if not _has_mask(ran):
            return ran
        if (
            isinstance(ran, dict)
            and isinstance(raw, dict)
            and all(k in raw for k in ran if _has_mask(ran[k]))
        ):
            return {k: self._fill(v, raw[k], variables, where) if k in raw else v for k, v in ran.items()}
        if isinstance(ran, list) and isinstance(raw, list) and len(ran) == len(raw):
            return [self._fill(a, b, variables, where) for a, b in zip(ran, raw, strict=True)]
        return self.templar.render(raw, variables, where)

    def _loop_vars(self, hr: HostRun, entry: Entry, step: Step | None) -> dict[str, Any] | None:
        """The loop item the entry was made for; a masked one comes from rendering the loop again."""
        if entry.rendered_item is not None:
            return entry.rendered_item
        if entry.item is None or not entry.item_masked:
            return entry.item
        if step is None or step.loop is None or entry.loop_index is None:
            raise RunbookError(
                f"'{entry.name}': its loop item held a secret and the step is gone from the runbook"
            )
        items = self.runner.loop_items(step, hr.vars(step.vars)) or []
        if entry.loop_index >= len(items):
            raise RunbookError(
                f"'{entry.name}': its loop item held a secret, and the loop now has {len(items)} item(s)"
            )
        return {step.loop_var: items[entry.loop_index]}

    # ------------------------------------------------------------------------------ interrupt
    def after_interrupt(self, aborted: bool = False) -> str:
        """Ctrl-C: roll back what changed if the operator agrees (or --yes), else say how to later.
        Ctrl-C twice (``aborted``, or again while asking or rolling back): nothing more is done on
        any host; the state is kept for `runbook rollback`. Returns the run's message."""
        self.run.stop_active()
        changed = [
            h
            for h, hr in self.run.hosts.items()
            if any(x.status != "rolled_back" for x in hr.state.entries if x.phase == "steps")
        ]
        later = f"run `runbook rollback {self.rb.name} --run {self.run.state.run_id}`"
        msg = "interrupted"
        if aborted:
            msg = "aborted (Ctrl-C twice)" + (f"; NOT rolled back: {', '.join(changed)} ({later})" if changed else "")
        elif changed and not self.opt.dry_run:
            try:
                msg = self._interrupted(changed, later)
            except Aborted:
                self.run.stop_active()
                msg = f"aborted (Ctrl-C twice) during rollback: state kept; {later}"
        self.run.persist()
        return msg

    def _interrupted(self, changed: list[str], later: str) -> str:
        question = f"Interrupted. Roll back what changed on {', '.join(changed)}?"
        do_it = self.opt.yes or (self.opt.confirm is not None and self.opt.confirm(question))
        if not do_it:
            return f"interrupted; NOT rolled back: {', '.join(changed)} ({later})"
        self.run.cancel.clear()
        try:  # every host at once: one that cannot be reached does not hold the others up
            self.run.parallel(changed, lambda hr: self.host(hr, "interrupted by the operator"))
        except (KeyboardInterrupt, Cancelled):
            return f"interrupted again during rollback: state kept; {later}"
        failed = [h for h in changed if self.run.hosts[h].rollback_status == "failed"]
        done = [h for h in changed if h not in failed]
        msg = "interrupted" + (f"; rolled back {', '.join(done)}" if done else "")
        if failed:
            why = "; ".join(f"{h}: {self.run.hosts[h].failure}" for h in failed)
            msg += f"; ROLLBACK FAILED on {', '.join(failed)}: a human must act ({why}; {later})"
        return msg


def _has_mask(value: Any) -> bool:
    if isinstance(value, str):
        return MASK in value
    if isinstance(value, dict):
        return any(_has_mask(k) or _has_mask(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_mask(v) for v in value)
    return False
