"""The engine: phases (preflight -> steps -> rollback -> always), serial batches, forks, the deploy
lock, resume, interrupts, exit codes. The only orchestrator of side effects; output is events.

One step on one host: runbook.execute.steprunner (and attempts); undo and rollback:
runbook.execute.rollback; magic variables: runbook.execute.magic; hosts in parallel: parallel;
options, results and exit codes: runbook.execute.runresult (re-exported here)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from runbook.errors import InventoryError, RunbookError, TransportError
from runbook.execute import faults, leftovers, pins
from runbook.execute import lock as locks
from runbook.execute.driver import Aborted, Cancelled
from runbook.execute.events import EventBus
from runbook.execute.faults import StateWriteError
from runbook.execute.hostctx import HostRun, StepRecord
from runbook.execute.magic import SPEC_MAGIC, HostVars, Play, git_commit, host_magic, operator
from runbook.execute.parallel import run_parallel, stop_active
from runbook.execute.rollback import Rollback
from runbook.execute.runresult import (
    EXIT_FAILED,
    EXIT_FAULT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PREFLIGHT,
    EXIT_ROLLBACK_FAILED,
    EXIT_USAGE,
    RunOptions,
    RunResult,
    fault_verdict,
    new_run_id,
    verdict,
)
from runbook.execute.state import RunState, mask_extra_vars
from runbook.execute.steprunner import StepRunner
from runbook.execute.transports import HostSpec
from runbook.execute.transports.pool import Connections
from runbook.model import inventory as inventories
from runbook.model.hostpattern import implicit_host_vars
from runbook.model.inventory_view import InventoryView
from runbook.model.runbook import Runbook, Step
from runbook.plan import planner
from runbook.plan.planner import start_index
from runbook.render.secrets import Redactor, collect_secrets, register_origins
from runbook.render.templar import LazyVars, Templar

__all__ = [
    "EXIT_FAILED",
    "EXIT_FAULT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PREFLIGHT",
    "EXIT_ROLLBACK_FAILED",
    "EXIT_USAGE",
    "Engine",
    "RunOptions",
    "RunResult",
    "new_run_id",
    "start_index",
]


class Engine:
    def __init__(
        self,
        runbook: Runbook,
        inventory: InventoryView,
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
            "operator": operator(),
        }
        self.state = options.resume or RunState(
            options.state_root, self.run_id, {"runbook": str(runbook.path), "dry_run": options.dry_run}
        )
        register_origins(
            self.redactor, runbook=runbook, inventory=inventory, extra_vars=options.extra_vars,
            declared=options.secret_names,
        )  # fmt: skip
        self.state.redact_obj = self.redactor.redact_obj
        self._earlier_owner = dict(self.state.meta)  # the process that wrote a resumed/rolled-back state
        self.state.private_facts = frozenset(
            s.register for s in runbook.all_steps() if s.register and s.no_log
        )
        self.hosts: dict[str, HostRun] = {}
        self.connections: Connections = options.connections or Connections(
            options.transport_options, options.transport_factory, ignore_vars=SPEC_MAGIC
        )
        self.broken_locks: dict[str, str] = {}  # host -> the stale deploy lock this run broke there
        self.play = Play(self.host_names, lambda h: h in self.hosts and self.hosts[h].failed)
        self.runner = StepRunner(
            bus=bus, run_id=self.run_id, templar=self.templar, redactor=self.redactor,
            project_dir=options.project_dir, loader_dirs=(runbook.path.parent, runbook.path.parent.parent),
            cancel=self.cancel, dry_run=options.dry_run, persist=self.persist, approve=self._approve,
            delegate=self.host_run, pinned=pins.Pinned(options.state_root),
            inflight=leftovers.InFlight(None if options.dry_run else self.state.dir / "inflight"),
            fault=self.fault, once_hosts=self._once_hosts, diff=options.diff, gate=options.step_gate,
            gather_peers=self._gather_peers,
        )  # fmt: skip
        self.runner.handlers = runbook.handlers
        self.rollback = Rollback(self.runner, self.templar, self.redactor, runbook, options, run=self)
        self._persist_lock = threading.Lock()
        self._asked_lock = threading.Lock()
        self._asked = self._saved = self._saved_durable = 0  # group commit of the state (persist)
        self._last_save = 0.0
        self.state_fault: str | None = None

    # ------------------------------------------------------------------------------ setup
    def persist(self, durable: bool = True, *, guard: bool = False, progress: bool = False) -> None:
        """Save the run state. Snapshots (durable) are written and fsynced at once, before the change
        they describe; a step counted done (``progress``: before its step.end) is written at once
        too, so a --resume never runs a completed step again; other records (a loop item's outcome)
        are coalesced (at most one write per 0.25 s, and always at the end of the run).
        A state that cannot be written is a run-level fault (the run's steps stop, see ``fault``);
        with ``guard`` (a snapshot before its change) it also raises, so the change is not made."""
        if self.opt.dry_run:
            return
        now = time.monotonic()
        if not durable and not progress and now - self._last_save < 0.25:
            return
        # group commit: hosts that ask while a save is being written share the next one. A request
        # is covered only by a save that began after it (so the save holds its change), and a
        # durable request only by a durable save.
        with self._asked_lock:
            self._asked += 1
            ticket = self._asked
        with self._persist_lock:
            if self._saved_durable >= ticket or (not durable and self._saved >= ticket):
                return
            upto = self._asked  # every request up to here made its change before asking
            self._last_save = now
            try:
                self.state.save(durable)
            except StateWriteError as exc:
                self.state_fault = self.state_fault or exc.message
                if guard:
                    raise
                return
            self._saved = max(self._saved, upto)
            if durable:
                self._saved_durable = max(self._saved_durable, upto)

    def fault(self) -> str | None:
        """A run-level fault: the audit trail or the run state cannot be written (the run stops)."""
        return self.bus.fault or self.state_fault

    def host_run(self, name: str) -> HostRun:
        """The host's context (made on first use: targeted hosts, delegate_to and hostvars ones)."""
        if name in self.hosts:
            return self.hosts[name]
        hv = implicit_host_vars(name, self.inventory.host_vars(name) if name in self.inventory.hosts else {})
        self.redactor.add(collect_secrets(hv, names=self.redactor.names))
        magic = host_magic(
            name, self.inventory, play=self.play, run=self.run_info, runbook_dir=self.rb.path.parent,
            hostvars=HostVars(self.inventory, lambda h: h in self.hosts, lambda h: self.host_run(h).vars()),
            dry_run=self.opt.dry_run, state=self.state,
        )  # fmt: skip
        base = LazyVars(
            [(magic, True), (dict(self.rb.vars), False), (hv, False), (dict(self.rb.defaults), False)],
            self.templar,
        )
        spec_vars = base.child((self.opt.extra_vars, False))
        try:
            spec = HostSpec.from_vars(
                name, {k: spec_vars[k] for k in spec_vars if k.startswith(("ansible_", "runbook_"))}
            )
        except RunbookError:
            raise
        except Exception as exc:  # ansible_port=abc: the inventory's error, before anything runs
            raise InventoryError(
                f"host {name}: its connection variables are invalid: {faults.describe(exc, self.redactor.redact)}",
                hint="check the host's ansible_* variables in the inventory",
            ) from None
        spec = replace(spec, become=False)  # each step decides (its become, else ansible_become)
        hr = HostRun(
            name=name, spec=spec, base_vars=base, state=self.state.host(name),
            transport_options=self.opt.transport_options, extra_vars=self.opt.extra_vars,
            connections=self.connections,
            play_var_names=tuple(dict.fromkeys([*map(str, self.rb.vars), *map(str, self.opt.extra_vars)])),
        )  # fmt: skip
        if self.opt.resume is not None:
            hr.facts.update(hr.state.facts)
        hr.state.facts = hr.facts
        self.hosts[name] = hr
        return hr

    def _approve(self, hr: HostRun, step: Step, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        from runbook.execute.approval import Identity, decide

        login = self.run_info["operator"]["user"] + "@" + self.run_info["operator"]["host"]
        try:
            d = decide(
                args, f"[{hr.name}] {args.get('prompt') or step.label}", self.opt.approvers or [Identity(login, "login")],
                yes=self.opt.yes, confirm=self.opt.confirm, ask_name=self.opt.ask_name,
            )  # fmt: skip
        except (EOFError, OSError):  # the terminal went away: no answer is no approval
            return False, f"{login}: no answer (the terminal closed)", {}
        return d.ok, d.who, d.details()

    def _selected(self, step: Step) -> bool:
        return planner.selected(step, self.opt.tags, self.opt.skip_tags)

    def parallel(self, hosts: Sequence[str], fn: Callable[[HostRun], Any]) -> None:
        """``fn(hr)`` for each host, --forks at a time (the rollback's way to reach every host)."""
        self._parallel(hosts, fn)

    def _parallel(self, hosts: Sequence[str], fn: Callable[[HostRun], Any]) -> None:
        forks = inventories.forks(self.opt.forks, self.rb.forks, self.inventory)
        for h in hosts:  # all of them before any starts: run_once waits for the batch's first host
            hr = self.host_run(h)
            hr.in_phase, hr.started, hr.position = True, False, None

        def one(hr: HostRun) -> Any:
            hr.started = True
            try:
                return fn(hr)
            finally:
                hr.in_phase = False

        run_parallel(hosts, self.host_run, one, forks=forks, runner=self.runner, cancel=self.cancel)

    def _once_hosts(self, phase: str) -> list[str]:
        """The hosts, in batch order, that may still reach a step of ``phase`` (run_once's first)."""
        hosts = self.play.batch if phase == "steps" else self.host_names
        return [
            h for h in hosts
            if h in self.hosts and self.hosts[h].in_phase and not (phase == "steps" and self.hosts[h].failed)
        ]  # fmt: skip

    def _gather_peers(self, phase: str) -> list[tuple[str, tuple[int, int, int] | None]]:
        """The hosts a batched step of ``phase`` may still wait for, with where each one is (None:
        not started; it counts only while a worker is free for it: forks bound the threads)."""
        hosts = [self.hosts[h] for h in self._once_hosts(phase)]
        forks = self.opt.forks or self.rb.forks or 10
        running = sum(1 for hr in hosts if hr.started)
        return [
            (hr.name, hr.position) for hr in hosts
            if hr.started or running < forks
        ]  # fmt: skip

    def stop_active(self) -> None:
        stop_active(self.runner, self.cancel)

    # ------------------------------------------------------------------------------ the run
    def run(self) -> RunResult:
        started = time.monotonic()
        status, code, message = "success", EXIT_OK, ""
        self._start_index()  # a bad --start-at is a usage error before anything runs
        for h in self.host_names:
            self.host_run(h)
        self.state.meta.update(self._state_meta())
        try:
            self.runner.emit("run.start", None, data=self._start_data())
            self.persist()  # the state directory must take the run's state before anything changes
            refused = self._transport_refusals()
            preflight_failed = self._phase_preflight() if not self.fault() and not refused else []
            if refused:  # native steps on hosts runbook has no transport for: nothing runs
                status, code, message = "refused", EXIT_PREFLIGHT, refused + "; nothing was changed"
            elif self.fault():  # the audit trail or the state cannot be written: refuse to start
                status, code = "refused", EXIT_PREFLIGHT
                message = f"{self.fault()}; nothing was changed"
            elif preflight_failed:
                status, code = "preflight_failed", EXIT_PREFLIGHT
                message = "pre-flight failed on " + ", ".join(preflight_failed) + "; nothing was changed"
                if self.opt.dry_run and any(self.hosts[h].render_error for h in preflight_failed):
                    code = EXIT_USAGE  # the plan could not be made: a template or argument is wrong
                # why, per host (a template or argument error names its file:line)
                message += "\n" + "\n".join(f"{h}: {self.hosts[h].failure}" for h in preflight_failed)
            else:
                status, code, message = self._phase_steps()
        except (KeyboardInterrupt, Cancelled, Aborted) as exc:
            self.interrupted = True
            self.cancel.set()
            aborted = isinstance(exc, Aborted)  # Ctrl-C twice: no rollback, out at once
            status, code, message = "interrupted", EXIT_INTERRUPTED, self._after_interrupt(aborted)
        except Exception as exc:  # a bug outside any step: still roll back, run always:, report
            status, code, message = self._after_crash(exc)
        status, code, message = self._fault_verdict(status, code, message)
        self.run_info["status"] = status  # what always: sees (notifications: the real outcome)
        try:
            if not self.interrupted:
                self.cancel.clear()
                self._phase_always()
        except Exception as exc:  # the outcome stands; always: itself broke (never a traceback)
            message = (message + "\n" if message else "") + "always: " + faults.describe(exc, self.redactor.redact)
        finally:
            self.connections.close()  # early connections no step used
            for hr in self.hosts.values():
                with contextlib.suppress(Exception):
                    hr.close()
            for hr in self.hosts.values():
                if hr.state.status == "pending":
                    hr.state.status = "failed" if hr.failed else "ok"
            self.persist()
        status, code, message = self._fault_verdict(status, code, message)
        result = RunResult(self.run_id, status, code, self._targeted(), started, time.monotonic(), message)
        self.runner.emit(
            "run.end", None, outcome=status, duration=result.ended - started,
            data={"exit_code": code, "message": self.redactor.redact(message), "stats": {h: hr.stats for h, hr in result.hosts.items()}},
        )  # fmt: skip
        self.bus.close()
        if self.fault() and result.exit_code == EXIT_OK:  # only the end of the audit trail failed
            result.status, result.exit_code = "aborted", EXIT_FAULT
            result.message = f"the run succeeded but {self.fault()}"
        return result

    def _after_interrupt(self, aborted: bool = False) -> str:
        """Ctrl-C: the operator's choice (see Rollback.after_interrupt); its own crash is reported."""
        try:
            return self.rollback.after_interrupt(aborted)
        except (KeyboardInterrupt, Cancelled, Aborted):
            return "interrupted again: state kept, run `runbook rollback`"
        except Exception as exc:
            return f"interrupted; the rollback broke ({faults.describe(exc, self.redactor.redact)}): run `runbook rollback {self.rb.name} --run {self.state.run_id}`"

    def _fault_verdict(self, status: str, code: int, message: str) -> tuple[str, int, str]:
        return fault_verdict(status, code, message, self.fault(), self.hosts.values())

    def _after_crash(self, exc: Exception) -> tuple[str, int, str]:
        """An unexpected exception escaped a phase (not a step: those are the step's failure). Roll
        back every host that changed something, as after a failure; the verdict says how it went."""
        msg = "internal error: " + faults.describe(exc, self.redactor.redact, "run")
        self.stop_active()
        self.cancel.clear()
        for hr in self.hosts.values():
            if not hr.failed:
                hr.failed, hr.failure = True, msg
            if hr.rollback_status is None and hr.changed:
                self._roll_back(hr, msg)
        return verdict(self.hosts, self.host_names, "", self.opt.dry_run)

    def rollback_run(self) -> RunResult:
        """`runbook rollback`: undo, from the saved state, everything a previous run changed."""
        started = time.monotonic()
        for h in self.host_names:
            hr = self.host_run(h)
            hr.failed, hr.failure = True, f"rollback of run {self.state.run_id} requested"
        self.runner.emit("run.start", None, data={**self._start_data(), "rollback_of": self.state.run_id})

        def undo_host(hr: HostRun) -> None:
            # the deploy lock, as for a deploy: never undo under a run that is still live on the host
            # (a killed run's lock is broken as stale: same control host, dead PID, or past its TTL)
            locked: bool | None = False
            try:
                if not self._undoable(hr):  # changed nothing: only release the dead run's own lock
                    self._break_dead_lock(hr)
                    return
                locked = self._lock(hr)
                if locked is None:
                    hr.rollback_status = "failed"
                    return
                self._stop_leftovers(hr)
                self._roll_back(hr, "requested by the operator")
            except (KeyboardInterrupt, Cancelled, Aborted):
                raise
            except Exception as exc:  # the host cannot be reached, a bug: that host's rollback failed
                hr.rollback_status = "failed"
                hr.failure = faults.describe(exc, self.redactor.redact)
            finally:
                if locked:
                    with contextlib.suppress(Exception):
                        locks.release(hr.transport(), self.rb.lock or "", self.run_id, hr.name)

        self.run_info["rollback_of"] = self.state.run_id  # always: can say it was a manual rollback
        try:
            self._parallel(self.host_names, lambda hr: self._host_guard(undo_host, hr))
        except (KeyboardInterrupt, Cancelled):
            self.interrupted = True
            self.stop_active()
        bad = [h for h, hr in self.hosts.items() if hr.rollback_status == "failed"]
        status, code = ("rollback_failed", EXIT_ROLLBACK_FAILED) if bad else ("rolled_back", EXIT_OK)
        # always: runs after a manual rollback too (the team hears about it), seeing its real status
        self.run_info["status"] = status
        always_problem = ""
        try:
            if not self.interrupted and any(hr.rollback_status is not None for hr in self.hosts.values()):
                self.cancel.clear()
                self._phase_always()
        except Exception as exc:  # the rollback's outcome stands; always: itself broke
            always_problem = "always: " + faults.describe(exc, self.redactor.redact)
        self.connections.close()
        for hr in self.hosts.values():
            with contextlib.suppress(Exception):
                hr.close()
        self.persist()
        if bad:
            msg = "rollback FAILED on " + ", ".join(f"{h} ({self.hosts[h].failure})" for h in bad)
            msg += "".join(f"\n{p}" for h in bad for p in self.hosts[h].rollback_problems)
        elif self.rb.rollback == "none":
            msg = f"run {self.state.run_id}: nothing undone (the runbook says rollback: none)"
        elif all(self.hosts[h].rollback_status is None for h in self.host_names):
            msg = f"run {self.state.run_id}: nothing to roll back (nothing it changed is left to undo)"
        else:
            msg = f"run {self.state.run_id} rolled back"
        if always_problem:
            msg += f"\n{always_problem}"
        if self.broken_locks:  # a dead run's lock, released and audited (lock.broken)
            msg += "".join(f"\n{h}: {why}" for h, why in self.broken_locks.items())
        if self.fault() and code == EXIT_OK:  # undone, but the state (or audit) does not say so
            status, code = "aborted", EXIT_FAULT
            msg += f"; {self.fault()}"
        result = RunResult(self.run_id, status, code, self._targeted(), started, time.monotonic(), msg)
        self.runner.emit("run.end", None, outcome=status, data={"exit_code": code, "message": msg})
        self.bus.close()
        return result

    def _targeted(self) -> dict[str, HostRun]:
        """The run's hosts, without the ones only reached through delegate_to (they have no recap)."""
        return {h: self.hosts[h] for h in self.host_names if h in self.hosts}

    def _start_data(self) -> dict[str, Any]:
        plan = planner.plan_digest(
            self.rb.sha256, self.host_names, planner.batches(self.host_names, self.rb.serial),
            tags=self.opt.tags, skip_tags=self.opt.skip_tags, extra_vars=self.opt.extra_vars,
        )  # fmt: skip
        return {
            "runbook": self.rb.name,
            "runbook_file": str(self.rb.path),
            "runbook_sha256": self.rb.sha256,
            "plan_sha256": plan,
            "git_commit": git_commit(self.rb.path.parent),
            "inventory": list(self.opt.inventory_sources),
            "limit": self.opt.limit,
            "hosts": self.host_names,
            "dry_run": self.opt.dry_run,
            "operator": self.run_info["operator"],
            "extra_vars": self.redactor.redact_obj(dict(self.opt.extra_vars)),
            "tags": sorted(self.opt.tags),
        }

    def _state_meta(self) -> dict[str, Any]:
        """What `runbook rollback` and --resume need to run again: no secret -e value in clear."""
        saved, secret = mask_extra_vars(self.opt.extra_vars, self.redactor)
        meta: dict[str, Any] = {"extra_vars": saved, "secret_extra_vars": secret, "limit": self.opt.limit}
        meta["secret_names"] = sorted(self.redactor.names)  # declared ones: names only, never values
        meta.update(leftovers.owner_meta())  # so a later rollback can tell this process is gone
        if self.opt.inventory_sources:
            meta["inventory"] = list(self.opt.inventory_sources)
        return meta

    # ------------------------------------------------------------------------------ preflight
    def _transport_refusals(self) -> str:
        """Why the run cannot start: native steps target hosts whose ansible_connection has no
        runbook transport (e.g. community.docker.docker); empty when every step can reach its host."""
        from runbook.plan.connections import native_only_steps, refusal

        steps = native_only_steps(s for s in self.rb.all_steps() if self._selected(s))
        lock = bool(self.rb.lock) and not self.opt.dry_run  # the lock file lives on the host
        if not steps and not lock:
            return ""
        out = []
        for h in self.host_names:
            spec = self.hosts[h].spec
            if not spec.native_transport:
                msg, hint = refusal(h, spec.connection, steps, lock=lock)
                out.append(f"{msg} (hint: {hint})")
        return "\n".join(out)

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
                    hr.failure = hr.failure or f"pre-flight '{rec.name}': {rec.msg}"
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
            self.play.batch = batch
            self._parallel(batch, lambda hr: self._run_host_steps(hr, steps, start_index))
            done_hosts += batch
            failed = [h for h in batch if self.hosts[h].failed]
            if (
                planner.failed_too_many(len(failed), len(batch), self.rb.max_fail_percentage)
                and n < len(all_batches) - 1
            ):
                aborted = f"{len(failed)} of {len(batch)} host(s) failed in the batch (max_fail_percentage {self.rb.max_fail_percentage:g}%)"
                break
        self.play.batch = list(self.host_names)
        any_failed = any(self.hosts[h].failed for h in done_hosts)
        if any_failed and self.rb.rollback_scope == "all" and not self.opt.dry_run:
            # every host that changed goes back, not only the failed ones: in every batch, and what
            # the run a --resume continues changed too (its snapshots are in the same state)
            self._parallel(
                [
                    h
                    for h in self.host_names
                    if self.hosts[h].rollback_status is None and self.hosts[h].changed
                ],
                lambda hr: self._roll_back(hr, "another host failed (rollback_scope: all)"),
            )
        return verdict(self.hosts, self.host_names, aborted, self.opt.dry_run)

    def _host_guard(self, fn: Callable[[HostRun], Any], hr: HostRun) -> None:
        """``fn(hr)`` for `runbook rollback`: whatever breaks (the lock's host unreachable, a bug)
        is that host's rollback failing (exit 4), never a traceback."""
        try:
            fn(hr)
        except (KeyboardInterrupt, Cancelled):
            raise
        except Exception as exc:
            hr.rollback_status = "failed"
            hr.failure = faults.describe(exc, self.redactor.redact)

    def _roll_back(self, hr: HostRun, reason: str | None = None) -> None:
        """Roll a host back; a crash of the rollback itself is its failure (exit 4), never a traceback."""
        if self.opt.dry_run:
            return
        try:
            self.rollback.host(hr, reason)
        except (KeyboardInterrupt, Cancelled, Aborted):
            raise
        except Exception as exc:
            hr.rollback_status = "failed"
            hr.failure = f"{hr.failure}; rollback: {faults.describe(exc, self.redactor.redact)}"

    def _start_index(self) -> int:
        return start_index(self.rb, self.opt.start_at)

    def _run_host_steps(self, hr: HostRun, steps: Sequence[Step], start_index: int) -> None:
        locked = False
        try:
            locked = self._lock(hr)
            if locked is None:
                return
            resume_after = -1
            if self.opt.resume is not None:
                self._stop_leftovers(hr)
                resume_after = hr.state.resume_after()
            for step in steps:
                if step.index < start_index or step.index <= resume_after:
                    continue
                rec = self.runner.run_step(hr, step)
                if rec.outcome == "failed":
                    self._host_failed(hr, rec)
                    break
                hr.state.last_completed = step.index  # saved as it ended (StepRunner._finish)
            if not hr.failed:  # the handlers its steps notified, once each (Ansible: end of the play)
                rec = self.runner.blocks.flush_handlers(hr)
                if rec is not None:
                    self._host_failed(hr, rec)
        except (KeyboardInterrupt, Cancelled):
            raise
        except Exception as exc:  # the lock's transport, a bug between steps: the host's failure
            hr.failed, hr.failure = True, faults.describe(exc, self.redactor.redact)
            hr.refused = isinstance(exc, TransportError) and not hr.changed
            hr.unreachable = hr.unreachable or isinstance(exc, TransportError)
            if hr.unreachable:
                hr.stats["unreachable"] = 1
            self._roll_back(hr)
        finally:
            if locked:
                with contextlib.suppress(Exception):
                    locks.release(hr.transport(), self.rb.lock or "", self.run_id, hr.name)

    def _host_failed(self, hr: HostRun, rec: StepRecord) -> None:
        """A step (or a handler) failed on the host: record why, and roll the host back."""
        hr.failed = True
        hr.render_error = rec.error == "render"
        hr.failure = f"step '{rec.name}' failed: {rec.msg}"
        # refused, not failed: nothing was changed on the host when it stopped
        hr.refused = (rec.error in ("refused", "fault") or hr.unreachable) and not hr.changed
        if hr.unreachable:
            hr.stats["unreachable"] = 1
        self._roll_back(hr)

    def _lock(self, hr: HostRun) -> bool | None:
        """Take the host's deploy lock (True), none is wanted (False), or it is held (None: failed)."""
        if not self.rb.lock or self.opt.dry_run:
            return False
        res = locks.acquire(hr.transport(), self.rb.lock, self.run_id, hr.name)
        if not res.acquired:
            hr.failed, hr.failure, hr.refused = True, res.message, not hr.changed
            self.runner.emit(
                "step.end", hr, None, phase="steps", step_name="deploy lock", outcome="failed",
                data={"msg": res.message, "module": "lock"},
            )  # fmt: skip
            hr.records.append(StepRecord("steps", -1, "deploy lock", "lock", "failed", msg=res.message))
            hr.stats["failed"] += 1
            return None
        if res.broke_stale:
            self.runner.emit("step.output", hr, None, phase="steps", data={"line": res.message})
            self.runner.emit("lock.broken", hr, None, phase="steps", data=dict(res.broken or {}))
            self.broken_locks[hr.name] = f"{res.message} ({(res.broken or {}).get('why', 'stale')})"
        return True

    def _undoable(self, hr: HostRun) -> bool:
        """Whether `runbook rollback` has anything to do on the host (an explicit rollback: always)."""
        return isinstance(self.rb.rollback, tuple) or any(
            x.phase == "steps" and x.status != "rolled_back" for x in hr.state.entries
        )

    def _break_dead_lock(self, hr: HostRun) -> None:
        """The run rolled back changed nothing on the host but may have died holding its deploy lock:
        release that lock (only the dead run's own, only when its process is verifiably gone)."""
        if not self.rb.lock or self.opt.dry_run or not leftovers.run_is_dead(self._earlier_owner):
            return
        broken = locks.break_dead(hr.transport(), self.rb.lock, self.state.run_id, hr.name)
        if broken:
            line = f"broke a stale lock held by run {self.state.run_id}"
            self.runner.emit("step.output", hr, None, phase="rollback", data={"line": line})
            self.runner.emit("lock.broken", hr, None, phase="rollback", data=broken)
            self.broken_locks[hr.name] = f"{line} ({broken['why']})"

    def _stop_leftovers(self, hr: HostRun) -> None:
        """Before undoing or resuming a dead run on a host: stop the commands of the steps that were
        in flight when it died (never what a completed step left running on purpose)."""
        if self.opt.dry_run or not leftovers.run_is_dead(self._earlier_owner):
            return
        left = self.runner.inflight.left(hr.name)
        if not left:
            return
        try:
            pids = leftovers.stop_leftovers(hr.transport(), left)
        except RunbookError:
            return  # unreachable: the undo that follows says so
        self.runner.inflight.forget(hr.name, left)
        steps = ", ".join(sorted({f"'{s}'" for s in left.values()}))
        if pids:
            msg = (
                f"stopped {len(pids)} process(es) run {self.state.run_id} left running: "
                f"{' '.join(map(str, pids))} (in flight in {steps})"
            )
            self.runner.emit("step.output", hr, None, data={"line": msg})

    # ------------------------------------------------------------------------------ always
    def _phase_always(self) -> None:
        steps = [s for s in self.rb.always if self._selected(s)]
        if not steps:
            return
        self.runner.emit("phase.start", None, phase="always")
        self.runner.batch = "always"

        def run_host(hr: HostRun) -> None:
            if hr.unreachable:
                return
            hr.notified.clear()  # what the steps phase notified ran (or its host failed) before
            for step in steps:
                self.runner.run_step(hr, step)
            self.runner.blocks.flush_handlers(hr, phase="always")  # what always: steps notified

        try:
            self._parallel(self.host_names, run_host)
        except (KeyboardInterrupt, Cancelled, Aborted):
            self.interrupted = True
