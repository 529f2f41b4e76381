"""The engine: phases (preflight -> steps -> rollback -> always), serial batches, forks, rollback
from snapshots, interrupts, exit codes. The only orchestrator of side effects; output is events."""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.errors import RunbookError
from runbook.execute import lock as locks
from runbook.execute.driver import Cancelled, Drive
from runbook.execute.events import EventBus
from runbook.execute.hostctx import HostRun, StepRecord
from runbook.execute.state import RunState
from runbook.execute.steprunner import StepRunner
from runbook.execute.transports import HostSpec, Transport
from runbook.model.runbook import Runbook, Step
from runbook.plan import planner
from runbook.plan.steps import base as kinds
from runbook.plan.steps.base import StepContext
from runbook.render.secrets import Redactor, collect_secrets
from runbook.render.templar import LazyVars, Templar

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PREFLIGHT, EXIT_ROLLBACK_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


@dataclass
class RunOptions:
    dry_run: bool = False
    yes: bool = False
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    forks: int | None = None
    start_at: str | None = None
    project_dir: Path = field(default_factory=Path.cwd)
    state_root: Path = field(default_factory=lambda: Path(".runbook"))
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    confirm: Callable[[str], bool] | None = None  # ask the operator (None: not interactive)
    run_id: str | None = None
    resume: RunState | None = None
    transport_factory: Callable[[HostSpec], Transport] | None = None


@dataclass
class RunResult:
    run_id: str
    status: str
    exit_code: int
    hosts: dict[str, HostRun]
    started: float
    ended: float
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "message": self.message,
            "duration": round(self.ended - self.started, 3),
            "hosts": {
                h: {
                    "stats": hr.stats,
                    "failed": hr.failed,
                    "failure": hr.failure,
                    "unreachable": hr.unreachable,
                    "rollback": hr.rollback_status,
                    "steps": [r.as_dict() for r in hr.records],
                }
                for h, hr in self.hosts.items()
            },
        }


class Engine:
    def __init__(
        self,
        runbook: Runbook,
        inventory: Any,
        hosts: Sequence[str],
        options: RunOptions,
        bus: EventBus,
        redactor: Redactor | None = None,
    ):
        self.rb = runbook
        self.inventory = inventory
        self.host_names = list(hosts)
        self.opt = options
        self.bus = bus
        self.redactor = redactor or Redactor()
        self.templar = Templar(self.redactor)
        self.run_id = options.run_id or new_run_id()
        self.cancel = threading.Event()
        self.interrupted = False
        self.run_info: dict[str, Any] = {
            "id": self.run_id,
            "status": "running",
            "dry_run": options.dry_run,
            "runbook": runbook.name,
            "operator": _operator(),
        }
        self.state = options.resume or RunState(
            options.state_root, self.run_id, {"runbook": str(runbook.path), "dry_run": options.dry_run}
        )
        self.redactor.add(collect_secrets(dict(runbook.vars)))
        self.redactor.add(collect_secrets(dict(options.extra_vars)))
        self.hosts: dict[str, HostRun] = {}
        self.runner = StepRunner(
            bus=bus, run_id=self.run_id, templar=self.templar, redactor=self.redactor,
            project_dir=options.project_dir, loader_dirs=(runbook.path.parent, runbook.path.parent.parent),
            cancel=self.cancel, dry_run=options.dry_run, persist=self._persist, approve=self._approve,
            delegate=self._delegate,
        )  # fmt: skip
        self._persist_lock = threading.Lock()

    # ------------------------------------------------------------------------------ setup
    def _persist(self) -> None:
        if self.opt.dry_run:
            return
        with self._persist_lock:
            self.state.save()

    def _host_run(self, name: str) -> HostRun:
        if name in self.hosts:
            return self.hosts[name]
        hv = self.inventory.host_vars(name) if name in getattr(self.inventory, "hosts", {}) else {}
        if not hv and name in ("localhost", "127.0.0.1"):
            hv = {"ansible_connection": "local"}
        self.redactor.add(collect_secrets(hv))
        magic = {
            "inventory_hostname": name,
            "inventory_hostname_short": name.split(".")[0],
            "host": name,
            "group_names": self.inventory.group_names(name)
            if name in getattr(self.inventory, "hosts", {})
            else [],
            "groups": _Groups(self.inventory),
            "hostvars": _HostVars(self),
            "run": self.run_info,
            "playbook_dir": str(self.rb.path.parent),
            "runbook_dir": str(self.rb.path.parent),
            "ansible_check_mode": self.opt.dry_run,
            "inventory_sources": list(getattr(self.inventory, "sources", []) or []),
            "snapshots": _Snapshots(self, name),
        }
        base = LazyVars([(magic, True), (dict(self.rb.vars), False), (hv, False)], self.templar)
        spec_vars = base.child((self.opt.extra_vars, False))
        spec = HostSpec.from_vars(
            name, {k: spec_vars[k] for k in spec_vars if k.startswith(("ansible_", "runbook_"))}
        )
        hr = HostRun(
            name=name, spec=spec, base_vars=base, state=self.state.host(name),
            transport_options=self.opt.transport_options, extra_vars=self.opt.extra_vars,
            transport_factory=self.opt.transport_factory,
        )  # fmt: skip
        self.hosts[name] = hr
        return hr

    def _delegate(self, name: str) -> HostRun:
        return self._host_run(name)

    def _approve(self, hr: HostRun, step: Step, args: dict[str, Any]) -> tuple[bool, str]:
        who = self.run_info["operator"]["user"] + "@" + self.run_info["operator"]["host"]
        if self.opt.yes:
            return True, f"{who} (--yes)"
        if self.opt.confirm is None:
            return False, "no terminal to ask and --yes not given"
        prompt = str(args.get("prompt") or step.label)
        return (self.opt.confirm(f"[{hr.name}] {prompt}"), who)

    # ------------------------------------------------------------------------------ selection
    def _selected(self, step: Step) -> bool:
        tags = set(step.tags)
        if "never" in tags and not (tags & self.opt.tags):
            return False
        if self.opt.tags and not (tags & self.opt.tags) and "always" not in tags:
            return False
        return not (self.opt.skip_tags and tags & self.opt.skip_tags)

    # ------------------------------------------------------------------------------ the run
    def run(self) -> RunResult:
        started = time.monotonic()
        status, code, message = "success", EXIT_OK, ""
        self._start_index()  # a bad --start-at is a usage error before anything runs
        for h in self.host_names:
            self._host_run(h)
        try:
            self.runner.emit("run.start", None, data=self._start_data())
            preflight_failed = self._phase_preflight()
            if preflight_failed:
                status, code = "preflight_failed", EXIT_PREFLIGHT
                message = "pre-flight failed on " + ", ".join(preflight_failed) + "; nothing was changed"
                if self.opt.dry_run and any(self.hosts[h].render_error for h in preflight_failed):
                    code = EXIT_USAGE  # the plan could not be made: a template or argument is wrong
                    message += "\n" + "\n".join(f"{h}: {self.hosts[h].failure}" for h in preflight_failed)
            else:
                status, code, message = self._phase_steps()
        except (KeyboardInterrupt, Cancelled):
            self.interrupted = True
            self.cancel.set()
            status, code, message = self._on_interrupt()
        self.run_info["status"] = status
        try:
            self.cancel.clear() if not self.interrupted else None
            if not self.interrupted:
                self._phase_always()
        finally:
            for hr in self.hosts.values():
                hr.close()
            for hr in self.hosts.values():
                if hr.state.status == "pending":
                    hr.state.status = "failed" if hr.failed else "ok"
            self._persist()
        result = RunResult(self.run_id, status, code, self._targeted(), started, time.monotonic(), message)
        self.runner.emit(
            "run.end", None, outcome=status, duration=result.ended - started,
            data={"exit_code": code, "message": self.redactor.redact(message), "stats": {h: hr.stats for h, hr in result.hosts.items()}},
        )  # fmt: skip
        self.bus.close()
        return result

    def rollback_run(self) -> RunResult:
        """`runbook rollback`: undo, from the saved state, everything a previous run changed."""
        started = time.monotonic()
        for h in self.host_names:
            hr = self._host_run(h)
            hr.failed, hr.failure = True, f"rollback of run {self.state.run_id} requested"
        self.runner.emit("run.start", None, data={**self._start_data(), "rollback_of": self.state.run_id})
        try:
            self._parallel(self.host_names, lambda hr: self._rollback_host(hr, "requested by the operator"))
        except (KeyboardInterrupt, Cancelled):
            self._interrupt_active()
        for hr in self.hosts.values():
            hr.close()
        self._persist()
        bad = [h for h, hr in self.hosts.items() if hr.rollback_status == "failed"]
        status, code = ("rollback_failed", EXIT_ROLLBACK_FAILED) if bad else ("rolled_back", EXIT_OK)
        msg = ("rollback FAILED on " + ", ".join(bad)) if bad else f"run {self.state.run_id} rolled back"
        result = RunResult(self.run_id, status, code, self._targeted(), started, time.monotonic(), msg)
        self.runner.emit("run.end", None, outcome=status, data={"exit_code": code, "message": msg})
        self.bus.close()
        return result

    def _targeted(self) -> dict[str, HostRun]:
        """The run's hosts, without the ones only reached through delegate_to (they have no recap)."""
        return {h: self.hosts[h] for h in self.host_names if h in self.hosts}

    def _start_data(self) -> dict[str, Any]:
        return {
            "runbook": self.rb.name,
            "runbook_file": str(self.rb.path),
            "runbook_sha256": self.rb.sha256,
            "git_commit": _git_commit(self.rb.path.parent),
            "hosts": self.host_names,
            "dry_run": self.opt.dry_run,
            "operator": self.run_info["operator"],
            "extra_vars": self.redactor.redact_obj(dict(self.opt.extra_vars)),
            "tags": sorted(self.opt.tags),
        }

    def _pool(self, hosts: Sequence[str]) -> ThreadPoolExecutor:
        forks = self.opt.forks or self.rb.forks or 10
        return ThreadPoolExecutor(
            max_workers=max(1, min(forks, len(hosts) or 1)), thread_name_prefix="runbook-host"
        )

    def _parallel(self, hosts: Sequence[str], fn: Callable[[HostRun], Any]) -> None:
        if not hosts:
            return
        if len(hosts) == 1:
            fn(self.hosts[hosts[0]])
            return
        with self._pool(hosts) as pool:
            futures = [pool.submit(fn, self.hosts[h]) for h in hosts]
            try:
                while not all(f.done() for f in futures):
                    time.sleep(0.02)
            except KeyboardInterrupt:
                self._interrupt_active()
                for f in futures:
                    f.cancel()
                raise
            for f in futures:
                exc = f.exception()
                if exc is not None and not isinstance(exc, Cancelled):
                    raise exc
            if self.cancel.is_set():
                raise Cancelled("interrupted")

    def _interrupt_active(self) -> None:
        self.cancel.set()
        with self.runner._lock:
            active = list(self.runner.active.values())
        for drive, transport in active:
            drive.cancel.set()
            try:
                transport.cancel()
            except Exception:  # best effort while stopping
                pass

    # ------------------------------------------------------------------------------ preflight
    def _phase_preflight(self) -> list[str]:
        steps = [s for s in self.rb.preflight if self._selected(s)]
        if not steps or self.opt.resume is not None:
            return []
        self.runner.emit("phase.start", None, phase="preflight")
        self.runner.batch = "preflight"

        def run_host(hr: HostRun) -> None:
            for step in steps:
                rec = self.runner.run_step(hr, step, read_only=True)
                if rec.outcome == "failed":
                    hr.failed = True
                    hr.render_error = hr.render_error or rec.error == "render"
                    hr.failure = hr.failure or f"pre-flight '{step.label}': {rec.msg}"
                    if hr.unreachable:
                        hr.stats["unreachable"] = 1
                        break

        self._parallel(self.host_names, run_host)
        failed = [h for h in self.host_names if self.hosts[h].failed]
        if failed and planner.failed_too_many(len(failed), len(self.host_names), self.rb.max_fail_percentage):
            return failed
        return []

    # ------------------------------------------------------------------------------ steps
    def _phase_steps(self) -> tuple[str, int, str]:
        steps = [s for s in self.rb.steps if self._selected(s)]
        start_index = self._start_index()
        live = [h for h in self.host_names if not self.hosts[h].failed]
        self.runner.emit("phase.start", None, phase="steps")
        aborted = ""
        done_hosts: list[str] = []
        all_batches = planner.batches(live, self.rb.serial)
        for n, batch in enumerate(all_batches):
            self.runner.emit("batch.start", None, phase="steps", data={"hosts": batch})
            self.runner.batch = n

            def run_host(hr: HostRun) -> None:
                self._run_host_steps(hr, steps, start_index)

            self._parallel(batch, run_host)
            done_hosts += batch
            failed = [h for h in batch if self.hosts[h].failed]
            if (
                planner.failed_too_many(len(failed), len(batch), self.rb.max_fail_percentage)
                and n < len(all_batches) - 1
            ):
                aborted = f"{len(failed)} of {len(batch)} host(s) failed in the batch (max_fail_percentage {self.rb.max_fail_percentage:g}%)"
                break
        any_failed = any(self.hosts[h].failed for h in done_hosts)
        if any_failed and self.rb.rollback_scope == "all" and not self.opt.dry_run:
            # every host changed in this run goes back, not only the failed ones
            self._parallel(
                [h for h in done_hosts if not self.hosts[h].failed and self.hosts[h].changed_anything],
                lambda hr: self._rollback_host(hr, "another host failed (rollback_scope: all)"),
            )
        return self._verdict(aborted)

    def _start_index(self) -> int:
        if not self.opt.start_at:
            return 0
        for s in self.rb.steps:
            if self.opt.start_at in (s.name, str(s.index + 1), s.key):  # numbered as `runbook show` does
                return s.index
        raise RunbookError(
            f"--start-at: no step named {self.opt.start_at!r}",
            hint="use a step's name or number as `runbook show` lists it",
        )

    def _run_host_steps(self, hr: HostRun, steps: Sequence[Step], start_index: int) -> None:
        locked = False
        try:
            if self.rb.lock and not self.opt.dry_run:
                res = locks.acquire(hr.transport(), self.rb.lock, self.run_id)
                if not res.acquired:
                    hr.failed, hr.failure = True, res.message
                    self.runner.emit(
                        "step.end",
                        hr,
                        None,
                        phase="steps",
                        step_name="deploy lock",
                        outcome="failed",
                        data={"msg": res.message, "module": "lock"},
                    )
                    hr.records.append(
                        StepRecord("steps", -1, "deploy lock", "lock", "failed", msg=res.message)
                    )
                    hr.stats["failed"] += 1
                    return
                locked = True
                if res.broke_stale:
                    self.runner.emit("step.output", hr, None, phase="steps", data={"line": res.message})
            resume_after = self._resume_after(hr) if self.opt.resume is not None else -1
            for step in steps:
                if step.index < start_index or step.index <= resume_after:
                    continue
                rec = self.runner.run_step(hr, step)
                if rec.outcome == "failed":
                    hr.failed = True
                    hr.render_error = rec.error == "render"
                    hr.failure = f"step '{step.label}' failed: {rec.msg}"
                    if hr.unreachable:
                        hr.stats["unreachable"] = 1
                    if not self.opt.dry_run:
                        self._rollback_host(hr)
                    break
                hr.state.last_completed = step.index
                self._persist()
        except RunbookError as exc:
            hr.failed, hr.failure = True, str(exc)
            if not self.opt.dry_run:
                self._rollback_host(hr)
        finally:
            if locked:
                try:
                    locks.release(hr.transport(), self.rb.lock or "", self.run_id)
                except RunbookError:
                    pass

    @staticmethod
    def _resume_after(hr: HostRun) -> int:
        """The last step a resumed run may skip: the last one completed, but never past a step whose
        change the earlier run rolled back (that change is gone and must be made again)."""
        undone = [
            e.index
            for e in hr.state.entries
            if e.phase == "steps" and e.status in ("rolled_back", "rollback_failed")
        ]
        last = hr.state.last_completed
        if undone:
            last = min(last, min(undone) - 1)
        hr.state.status = "pending"  # this run decides the host's status again
        return last

    def _verdict(self, aborted: str) -> tuple[str, int, str]:
        failed = [h for h in self.host_names if self.hosts[h].failed]
        if not failed:
            return "success", EXIT_OK, ""
        rb_failed = [h for h in self.host_names if self.hosts[h].rollback_status == "failed"]
        lines = [f"{h}: {self.hosts[h].failure}" for h in failed]
        if aborted:
            lines.append("aborted: " + aborted)
        if self.opt.dry_run:
            render = any(self.hosts[h].render_error for h in failed)
            return "failed", EXIT_USAGE if render else EXIT_FAILED, "\n".join(lines)
        if rb_failed:
            lines.append(
                "ROLLBACK FAILED on "
                + ", ".join(rb_failed)
                + ": a human must act (see the recap and `runbook rollback`)"
            )
            return "rollback_failed", EXIT_ROLLBACK_FAILED, "\n".join(lines)
        rolled = [h for h in failed if self.hosts[h].rollback_status == "ok"]
        return ("rolled_back" if rolled else "failed"), EXIT_FAILED, "\n".join(lines)

    # ------------------------------------------------------------------------------ rollback
    def _rollback_host(self, hr: HostRun, reason: str | None = None) -> None:
        if self.rb.rollback == "none":
            return
        entries = [e for e in hr.state.entries if e.phase == "steps" and e.status != "rolled_back"]
        explicit = isinstance(self.rb.rollback, tuple)
        if not entries and not explicit:
            return  # nothing changed, nothing to roll back: the run is "failed", not "rolled_back"
        self.runner.emit(
            "rollback.start",
            hr,
            None,
            phase="rollback",
            data={"reason": self.redactor.redact(reason or hr.failure)},
        )
        ok = True
        self.run_info["status"] = "rolling_back"
        if explicit:
            for step in self.rb.rollback:  # type: ignore[union-attr]
                rec = self.runner.run_step(hr, step, phase="rollback")
                ok = ok and rec.outcome != "failed"
            for e in entries:
                e.status = "rolled_back" if ok else "rollback_failed"
        else:
            by_key = {(s.phase, s.index): s for s in self.rb.steps}
            for e in reversed(entries):
                step = by_key.get((e.phase, e.index))
                ok = self._undo_entry(hr, e, step) and ok
        self._persist()
        hr.rollback_status = "ok" if ok else "failed"
        hr.state.status = "rolled_back" if ok else "rollback_failed"
        self.runner.emit("rollback.end", hr, None, phase="rollback", outcome="ok" if ok else "failed")

    def _undo_entry(self, hr: HostRun, e: Any, step: Step | None) -> bool:
        kind = kinds.get(e.module)
        start = time.monotonic()
        label = e.name
        outcome, msg = "rolled_back", ""
        where = self._host_run(e.delegate_to) if getattr(e, "delegate_to", None) else hr
        try:
            if e.snapshots and kind is not None and kind.can_undo:
                ctx = StepContext(
                    host=where.name,
                    vars=hr.vars(),
                    project_dir=self.opt.project_dir,
                    run_id=self.run_id,
                    become=bool(step and step.become) or hr.spec.become,
                    render_str=lambda t: self.templar.render_str(t, hr.vars()),
                    loader_dirs=self.runner.loader_dirs,
                )
                for snap in reversed(e.snapshots):
                    drive = Drive(
                        transport=where.transport(),  # where the step ran (its delegate_to host)
                        redact=self.redactor.redact,
                        on_note=lambda line: self.runner.emit("step.output", hr, None, data={"line": line}),
                    )
                    out = drive.run(kind.undo(e.args, snap, ctx))
                    msg = out.msg
                    if not out.ok:
                        outcome = "failed"
                        break
            elif step is not None and step.undo is not None:
                undo_step = step.undo
                if step.delegate_to and not undo_step.delegate_to:  # undo where the step ran
                    undo_step = replace(undo_step, delegate_to=step.delegate_to)
                rec = self.runner.run_step(hr, undo_step, phase="rollback")
                outcome, msg = ("rolled_back" if rec.outcome != "failed" else "failed"), rec.msg
                hr.records.pop()  # recorded below as the rollback of the original step
                hr.stats[rec.outcome] = max(0, hr.stats.get(rec.outcome, 0) - 1)
            elif e.changed:
                outcome, msg = "skipped", "cannot be undone automatically (no snapshot, no undo:)"
            else:
                outcome, msg = "skipped", "nothing to undo"
        except (RunbookError, Cancelled) as exc:
            outcome, msg = "failed", str(exc)
        duration = time.monotonic() - start
        e.status = "rolled_back" if outcome in ("rolled_back", "skipped") else "rollback_failed"
        rec = StepRecord(
            "rollback",
            e.index,
            f"undo: {label}",
            e.module,
            outcome if outcome != "rolled_back" else "rolled_back",
            duration=duration,
            msg=self.redactor.redact(msg),
        )
        hr.records.append(rec)
        if outcome == "rolled_back":
            hr.stats["rolled_back"] += 1
        elif outcome == "failed":
            hr.stats["failed"] += 1
        self.runner.emit(
            "rollback.step",
            hr,
            None,
            phase="rollback",
            outcome=outcome,
            duration=duration,
            data={"step": label, "module": e.module, "index": e.index, "msg": rec.msg},
        )
        return outcome != "failed"

    # ------------------------------------------------------------------------------ always / interrupt
    def _phase_always(self) -> None:
        steps = [s for s in self.rb.always if self._selected(s)]
        if not steps:
            return
        self.runner.emit("phase.start", None, phase="always")
        self.runner.batch = "always"

        def run_host(hr: HostRun) -> None:
            if hr.unreachable:
                return
            for step in steps:
                self.runner.run_step(hr, step)

        try:
            self._parallel(self.host_names, run_host)
        except (KeyboardInterrupt, Cancelled):
            self.interrupted = True

    def _on_interrupt(self) -> tuple[str, int, str]:
        self._interrupt_active()
        changed = [
            h
            for h, hr in self.hosts.items()
            if any(e.status != "rolled_back" for e in hr.state.entries if e.phase == "steps")
        ]
        msg = "interrupted"
        if changed and not self.opt.dry_run:
            question = f"Interrupted. Roll back what changed on {', '.join(changed)}?"
            do_it = self.opt.yes or (self.opt.confirm is not None and self.opt.confirm(question))
            if do_it:
                self.cancel.clear()
                for h in changed:
                    try:
                        self._rollback_host(self.hosts[h], "interrupted by the operator")
                    except (KeyboardInterrupt, Cancelled):
                        msg = "interrupted again during rollback: state kept, run `runbook rollback`"
                        break
                else:
                    msg = "interrupted; rolled back " + ", ".join(changed)
            else:
                msg = f"interrupted; NOT rolled back: {', '.join(changed)} (run `runbook rollback {self.rb.name} --run {self.run_id}`)"
        self._persist()
        return "interrupted", EXIT_INTERRUPTED, msg


class _Groups(Mapping[str, list[str]]):
    def __init__(self, inventory: Any):
        self._inv = inventory

    def __getitem__(self, key: str) -> list[str]:
        groups = getattr(self._inv, "groups", {})
        if key not in groups:
            raise KeyError(key)
        return self._inv.select(key)

    def __iter__(self):
        return iter(getattr(self._inv, "groups", {}))

    def __len__(self) -> int:
        return len(getattr(self._inv, "groups", {}))


class _HostVars(Mapping[str, Any]):
    def __init__(self, engine: Engine):
        self._e = engine

    def __getitem__(self, key: str) -> Any:
        if key not in self._e.hosts and key not in getattr(self._e.inventory, "hosts", {}):
            raise KeyError(key)
        return self._e._host_run(key).vars()

    def __iter__(self):
        return iter(getattr(self._e.inventory, "hosts", {}))

    def __len__(self) -> int:
        return len(getattr(self._e.inventory, "hosts", {}))


class _Snapshots(Mapping[str, Any]):
    """``{{ snapshots['Step name'] }}`` in explicit rollback steps: the snapshots taken by that step."""

    def __init__(self, engine: Engine, host: str):
        self._e, self._h = engine, host

    def _map(self) -> dict[str, Any]:
        st = self._e.state.host(self._h)
        out: dict[str, Any] = {}
        for e in st.entries:
            out.setdefault(e.name, []).extend(e.snapshots)
        return {k: (v[0] if len(v) == 1 else v) for k, v in out.items()}

    def __getitem__(self, key: str) -> Any:
        return self._map()[key]

    def __iter__(self):
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


def _operator() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname()}


def _git_commit(path: Path) -> str | None:
    p = path.resolve()
    for d in [p, *p.parents]:
        head = d / ".git" / "HEAD"
        if head.exists():
            ref = head.read_text().strip()
            if ref.startswith("ref: "):
                ref_file = d / ".git" / ref[5:]
                if ref_file.exists():
                    return ref_file.read_text().strip()
                packed = d / ".git" / "packed-refs"
                if packed.exists():
                    for line in packed.read_text().splitlines():
                        if line.endswith(ref[5:]):
                            return line.split()[0]
                return None
            return ref
    return None
