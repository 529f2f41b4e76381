"""Ansible's block/rescue/always and handlers/notify, on one host.

block: its steps in order until one fails. Then, if the block has rescue: steps, the failure is
handed to them (``ansible_failed_task``, ``ansible_failed_result``) and, if they all succeed, the
block is *rescued*: the host goes on and the run does not fail (a rescued failure is not a run
failure; what the block changed stays recorded, so a later failure still rolls it back). always:
steps run whatever happened. A failure that no rescue handled fails the block, hence the host:
its rollback starts as for any failed step (after the block's always: steps ran, as Ansible runs
them before the host fails).

Handlers: a step with ``notify:`` that *changed* something marks the handlers it names (by name or
by a handler's ``listen:`` topic). Marked handlers run once each, in the order handlers: lists
them, when the host's steps end (per batch) or at ``meta: flush_handlers``; not on a host that
failed. After a rollback, the handlers notified by the steps it undid run once (a restored proxy
config is reloaded), see Rollback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from runbook.execute.hostctx import HostRun, StepRecord
from runbook.model.runbook import Step


class Budget:
    """A block's time budget (``budget:``): started when the block starts; its steps and its
    rescue/always count. Wall-clock time of this host's block (time.monotonic)."""

    def __init__(self, step: Step, phase: str):
        assert step.budget is not None
        self.step, self.phase = step, phase
        self.seconds, self.action = step.budget
        self.started = time.monotonic()
        self.tripped = False  # a step was not started for it (the failure, rescued or not, is said)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def over(self) -> str | None:
        """What to say when the block took longer than its budget (None: within it)."""
        took = self.elapsed()
        if took <= self.seconds:
            return None
        verdict = "failed" if self.action == "fail" else "warning"
        return f"budget {verdict}: block '{self.step.label}' took {_span(took)}, over its {_span(self.seconds)} budget"

    def spent_record(self, sub: Step) -> StepRecord | None:
        """With on_exceed: fail, the failure of a step that may no longer start."""
        if self.action != "fail" or self.elapsed() <= self.seconds:
            return None
        self.tripped = True
        msg = (f"not started: block '{self.step.label}' spent its {_span(self.seconds)} budget "
               f"({_span(self.elapsed())} so far)")  # fmt: skip
        return StepRecord(self.phase, sub.index, sub.label, sub.module, "failed", msg=msg)


def _span(seconds: float) -> str:
    minutes, secs = divmod(round(seconds, 1), 60)
    return f"{int(minutes)}m{secs:04.1f}s" if minutes else f"{secs:.1f}s"


@dataclass
class Blocks:
    """Runs blocks (block/rescue/always) and handlers for a StepRunner, which gives it exactly what
    it needs: how a step is run (``run_step``, the runner's own), how an event is emitted, the
    runbook's handlers (a getter: the engine sets them once the runner exists), and whether this is
    a dry-run (budgets are not kept in a plan)."""

    run_step: Callable[..., StepRecord]
    emit: Callable[..., None]
    handlers: Callable[[], Sequence[Step]]
    dry_run: bool = False

    # ------------------------------------------------------------------------------ block
    def run_block(self, hr: HostRun, step: Step, *, read_only: bool, phase: str) -> StepRecord:
        rec = StepRecord(phase, step.index, step.label, "block", "ok")
        done: list[StepRecord] = []
        failure: tuple[Step, StepRecord] | None = None
        budget = Budget(step, phase) if step.budget is not None and not self.dry_run else None
        for sub in step.block:
            spent = budget.spent_record(sub) if budget is not None else None
            if spent is not None:  # on_exceed: fail, and the time is up: the next step does not start
                failure = (sub, spent)
                break
            r = self.run_step(hr, sub, read_only=read_only, phase=phase)
            done.append(r)
            if r.outcome == "failed":
                failure = (sub, r)
                break
        if failure is not None and step.rescue:
            sub, r = failure
            hr.facts["ansible_failed_task"] = {"name": sub.label, "action": sub.module, "module": sub.module}
            hr.facts["ansible_failed_result"] = getattr(r, "_registered", None) or {
                "failed": True, "msg": r.msg, "rc": r.rc, "stdout": r.stdout, "stderr": r.stderr,
            }  # fmt: skip
            rescue_failed = None
            for resc in step.rescue:
                rr = self.run_step(hr, resc, read_only=read_only, phase=phase)
                done.append(rr)
                if rr.outcome == "failed":
                    rescue_failed = (resc, rr)
                    break
            if rescue_failed is None:
                if hr.stats.get("failed"):
                    hr.stats["failed"] -= 1  # as Ansible's recap: rescued, not failed
                failure = None
            else:
                failure = rescue_failed
        for alw in step.always:
            r = self.run_step(hr, alw, read_only=read_only, phase=phase)
            done.append(r)
            if r.outcome == "failed" and failure is None:
                failure = (alw, r)
        over = budget.over() if budget is not None else None
        if over is not None:  # said in the log and the audit (step.output), and in the block's record
            self.emit("step.output", hr, None, phase=phase, data={"line": over})
            if budget is not None and budget.action == "fail" and failure is None and not budget.tripped:
                failure = (step, StepRecord(phase, step.index, step.label, "block", "failed", msg=over))
            rec.msg = over
        if failure is not None:
            rec.outcome, rec.msg, rec.error = (
                "failed",
                f"'{failure[1].name}': {failure[1].msg}",
                failure[1].error,
            )
            rec.name = failure[1].name
        elif any(r.outcome == "changed" for r in done):
            rec.outcome = "changed"
        elif done and all(r.outcome == "skipped" for r in done):
            rec.outcome = "skipped"
        return rec

    # ------------------------------------------------------------------------------ handlers
    def notify(self, hr: HostRun, step: Step, rec: StepRecord) -> None:
        """Mark the handlers a changed step notifies."""
        if step.notify and rec.outcome == "changed":
            for name in step.notify:
                hr.notified[name] = None

    def notified_handlers(self, names: Iterable[str]) -> list[Step]:
        wanted = set(names)
        return [h for h in self.handlers() if h.name in wanted or wanted & set(h.listen)]

    def flush_handlers(
        self, hr: HostRun, *, read_only: bool = False, phase: str = "steps"
    ) -> StepRecord | None:
        """Run the handlers notified so far, once each, in the order handlers: lists them; the first
        that fails ends it (its record is returned: the host fails)."""
        if not hr.notified:
            return None
        todo = self.notified_handlers(list(hr.notified))
        hr.notified.clear()
        for h in todo:
            rec = self.run_step(hr, h, read_only=read_only, phase=phase)
            if rec.outcome == "failed":
                return rec
        return None


def handler_names(steps: Iterable[Step | None]) -> list[str]:
    """The handlers the given steps notify (for those a rollback undid)."""
    out: dict[str, Any] = {}
    for s in steps:
        if s is not None:
            out.update(dict.fromkeys(s.notify))
    return list(out)
