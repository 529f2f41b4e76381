"""``--engine ansible``: the compiled playbook (runbook.compile) run by ansible-runner, its events
streamed live into runbook's event bus, so the console, JSON/JUnit output and the audit trail show
the run as the native engine's (docs/ansible-engine.md).

What ansible-runner is handed is what an Ansible-module step hands it (runbook.execute.clients.
ansible_io): a private 0700 data directory removed afterwards, the inventory as runbook loaded it
(every string ``!unsafe``, every secret an inline ``!vault`` value whose password stays in memory),
host keys checked, and ``ANSIBLE_COLLECTIONS_PATH`` on the collection shipped in the package.

Ansible's events become runbook's: a play is a phase (``NAME: preflight`` -> preflight; the steps
block, its rescue -> rollback, its always), a task on a host is ``step.start``/``step.end`` with the
step's own name, index and kind, a rescue's undo task is a ``rollback.step``; the verdict (and so
the exit code) is the native engine's (runbook.execute.runresult.verdict): 0 ok, 1 failed and
rolled back, 3 refused before any change (pre-flight, deploy lock, unreachable), 4 rollback
incomplete."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

from runbook.execute.events import Event
from runbook.execute.hostctx import HostRun, StepRecord
from runbook.execute.runresult import (
    EXIT_INTERRUPTED,
    EXIT_PREFLIGHT,
    RunResult,
    fault_verdict,
    new_run_id,
    verdict,
)
from runbook.execute.state import HostState, RunState
from runbook.kinds import base as kinds
from runbook.model.yamllib import yaml

EXIT_INTERNAL = 70
CANCEL_WAIT = 60.0  # seconds ansible-playbook is given to stop once cancelled
ORDER_WAIT = 5.0  # seconds an approval waits for its step's start event to be shown first
PHASES = ("preflight", "steps", "rollback", "always")
FAIL_TASK = "the run failed: rolled back"
LOCK_TASKS = ("deploy lock", "release the deploy lock")
WINDOW_TASK = "inside the maintenance window"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        stats = list(os.scandir("/proc"))
    except OSError:
        return set()
    for entry in stats:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:  # gone already
            pass


@dataclass(frozen=True)
class TaskInfo:
    """What a compiled task stands for: the runbook step's phase, index, name and kind."""

    phase: str
    index: int
    name: str
    module: str
    undo_of: str | None = None  # a rescue task undoing this step (its name)
    own_undo: bool = False  # the step's own `undo:` step (a step of its own: step.start/step.end too)
    key: str = ""  # the step in the runbook (steps[2], steps[2].fallback[0]): its state entries


def task_map(rb: Any) -> dict[str, list[TaskInfo]]:
    """Task name -> the runbook steps it may be (in phase order; one name may be in two phases)."""
    out: dict[str, list[TaskInfo]] = {}

    def add(name: str, info: TaskInfo) -> None:
        out.setdefault(name, []).append(info)

    for s in rb.preflight:
        add(s.name or s.module, TaskInfo("preflight", s.index, s.label, s.module))
    for s in rb.steps:
        add(s.name or s.module, TaskInfo("steps", s.index, s.label, s.module, key=s.key))
        for f in s.fallback or ():
            add(f.name or f.module, TaskInfo("steps", s.index, f.label, f.module, key=f.key))
    if isinstance(rb.rollback, tuple):
        for s in rb.rollback:
            add(s.name or s.module, TaskInfo("rollback", s.index, s.label, s.module))
    elif rb.rollback == "auto":
        for s in rb.steps:
            name = f"undo: {s.name or s.module}"
            own = s.undo is not None
            module = s.undo.module if own else s.module
            add(name, TaskInfo("rollback", s.index, f"undo: {s.label}", module, s.label, own))
    for s in rb.always:
        add(s.name or s.module, TaskInfo("always", s.index, s.label, s.module))
    add("deploy lock", TaskInfo("steps", -1, "deploy lock", "lock"))
    add("release the deploy lock", TaskInfo("always", -1, "release the deploy lock", "lock"))
    return out


def register_name(step: Any) -> str:
    """The variable a compiled step task registers (runbook.compile: ``register:`` or runbook_step_N)."""
    return step.register or f"runbook_step_{step.index + 1}"


def playbook_for(
    rb: Any, *, dry_run: bool, start: int = 0, resumed: frozenset[str] | None = None, refused: bool = False
) -> str:
    """The compiled playbook as run here: the window was checked by the session (check_window,
    which --force-window skips), a plan takes no deploy lock (as the native engine).

    ``start`` (--start-at): the steps before it are left out (the pre-flight play stays: native
    runs pre-flight on --start-at too). ``resumed`` (--resume; the registered variables the
    resumed run carries over): no pre-flight play (native does not run it again on a resume); each
    step task is skipped on a host whose saved state says it completed it (``runbook_resume_after``,
    a host variable), and there a ``set_fact`` puts back what the earlier run registered (the
    snapshots the rescue undoes from, the results later steps read; ``runbook_resumed``): Ansible
    registers a skipped task's result over it. ``refused`` (the run state cannot be written): only
    the ``always:`` steps run (as native: nothing is changed, the team still hears of the run)."""
    from runbook.compile import compile_runbook, to_yaml

    plays = compile_runbook(rb)
    for play in plays:
        tasks = [t for t in play["tasks"] if t.get("name") != WINDOW_TASK]
        pre = str(play.get("name", "")).endswith(": preflight")
        if pre and (resumed is not None or refused):
            tasks = []
        if dry_run:
            for t in tasks:
                for key in ("block", "always"):
                    if key in t:
                        t[key] = [x for x in t[key] if x.get("name") not in LOCK_TASKS]
        if not pre:
            for t in tasks:
                if "block" in t and refused:  # (Ansible wants a task in a block that has always:)
                    t["block"] = [{"name": "refused: nothing runs", "ansible.builtin.meta": "noop"}]
                    t.pop("rescue", None)
                    t["always"] = [x for x in t.get("always", ()) if x.get("name") not in LOCK_TASKS]
                    if not t["always"]:
                        t.pop("always")
                elif "block" in t:
                    t["block"] = _step_tasks(rb, t["block"], start, resumed)
        play["tasks"] = tasks
    return to_yaml([p for p in plays if p["tasks"]])


RESUMED_TASK = "resumed: "  # the set_fact that puts an earlier run's registered result back


def _step_tasks(
    rb: Any, block: list[dict[str, Any]], start: int, resumed: frozenset[str] | None
) -> list[Any]:
    lead = [t for t in block[:1] if t.get("name") == "deploy lock"]
    body = block[len(lead) :]
    if len(body) != len(rb.steps):  # (the compiler's layout: one task per step, in order)
        raise RuntimeError("the compiled steps block does not match the runbook's steps")
    out = list(lead)
    for step, t in zip(rb.steps, body, strict=True):
        if step.index < start:
            continue
        if resumed is None:
            out.append(t)
            continue
        done = f"(runbook_resume_after | default(-1) | int) >= {step.index}"
        when = t.get("when")
        t["when"] = [f"not ({done})", *(when if isinstance(when, list) else [] if when is None else [when])]
        out.append(t)
        reg = register_name(step)
        if reg in resumed:
            out.append({
                "name": RESUMED_TASK + str(step.name or step.module),
                "ansible.builtin.set_fact": {reg: "{{ runbook_resumed[" + repr(reg) + "] }}"},
                "when": [done, f"{reg!r} in (runbook_resumed | default({{}}))"],
                "tags": ["always"],
            })  # fmt: skip
    return out


def task_lines(text: str, tasks: dict[str, list[TaskInfo]]) -> dict[int, TaskInfo]:
    """The line of each task in the playbook ``text`` (Ansible's ``task_path`` is ``FILE:LINE``) ->
    the step it runs: a task's name may be a template Ansible renders, its line is what it is."""
    out: dict[int, TaskInfo] = {}

    def value(node: Any, key: str) -> Any:
        for k, v in getattr(node, "value", ()):
            if getattr(k, "value", None) == key:
                return v
        return None

    def walk(seq: Any, phase: str) -> None:
        for node in getattr(seq, "value", ()) or ():
            if value(node, "block") is not None:  # the steps block, or a step with fallback steps
                for key in ("block", "rescue", "always"):  # (fallback steps: the step's phase)
                    walk(value(node, key), phase)
                continue
            name = value(node, "name")
            for info in tasks.get(str(getattr(name, "value", "")), ()):
                if info.phase == phase:
                    out[node.start_mark.line + 1] = info
                    break

    for play in getattr(yaml.compose(text), "value", ()) or ():
        pre = str(getattr(value(play, "name"), "value", "")).endswith(": preflight")
        main = value(play, "tasks")
        if pre:
            walk(main, "preflight")
        else:
            for node in getattr(main, "value", ()) or ():
                walk(value(node, "block"), "steps")
                walk(value(node, "rescue"), "rollback")
                walk(value(node, "always"), "always")
    return out


class AnsibleEngine:
    """Runs a prepared target through ansible-runner; ``run()`` returns the native RunResult."""

    def __init__(self, target: Any, options: Any, bus: Any, redactor: Any) -> None:
        self.target, self.opt, self.bus, self.redactor = target, options, bus, redactor
        self.rb = target.runbook
        self.run_id = options.run_id or new_run_id()
        self.tasks = task_map(self.rb)
        self.playbook = ""  # made when the run starts (a bad --start-at is refused then, as native)
        self.lines: dict[int, TaskInfo] = {}
        self.resume = options.resume  # runbook.execute.state.RunState of the run resumed
        self.state = options.resume or RunState(
            options.state_root, self.run_id,
            {"runbook": str(self.rb.path), "dry_run": options.dry_run, "engine": "ansible"},
        )  # fmt: skip
        self.state.redact_obj = redactor.redact_obj
        self.state.private_facts = frozenset(
            s.register for s in self.rb.all_steps() if s.register and s.no_log
        )
        self.resume_after: dict[str, int] = {}  # host -> the last step the resumed run completed there
        self.carried: dict[str, dict[str, Any]] = {}  # host -> registered results put back (resume)
        self.seen: set[str] = set()  # hosts the steps play reached (a resumed one may skip every step)
        self.desk: Any = None  # the approval desk (runbook.session.ansible_approval)
        self.state_fault: str | None = None  # the run state could not be written
        self.running: dict[tuple[str, str], tuple[TaskInfo, str]] = {}  # (host, step key) -> its task's uuid
        self.hosts: dict[str, HostRun] = {}
        self.section: dict[str, int] = {}  # host -> index in PHASES it has reached
        self.started: dict[tuple[str, str], float] = {}
        self.play_phase = "steps"
        self.preflight_failed: list[str] = []
        self.output: list[str] = []
        self.cancel = threading.Event()
        self.items: dict[tuple[str, str, int], int] = {}  # loop items seen per host and step

    # ------------------------------------------------------------------------------ events out
    def emit(self, kind: str, host: str | None = None, **kw: Any) -> None:
        self.bus.emit(Event(kind=kind, run_id=self.run_id, host=host, **kw))

    def _start_data(self) -> dict[str, Any]:
        from runbook.execute.magic import git_commit, operator
        from runbook.plan import planner

        names = self.target.hosts
        plan = planner.plan_digest(
            self.rb.sha256, names, planner.batches(names, self.rb.serial),
            tags=self.opt.tags, skip_tags=self.opt.skip_tags, extra_vars=self.opt.extra_vars,
        )  # fmt: skip
        return {
            "runbook": self.rb.name, "runbook_file": str(self.rb.path), "runbook_sha256": self.rb.sha256,
            "plan_sha256": plan, "git_commit": git_commit(self.rb.path.parent),
            "inventory": list(self.opt.inventory_sources), "limit": self.opt.limit, "hosts": list(names),
            "dry_run": self.opt.dry_run, "operator": operator(), "engine": "ansible",
            "extra_vars": self.redactor.redact_obj(dict(self.opt.extra_vars)), "tags": sorted(self.opt.tags),
        }  # fmt: skip

    # ------------------------------------------------------------------------------ inventory
    def _inventory(self) -> tuple[dict[str, Any], set[str]]:
        """Each host's variables as runbook loaded them, its connection as runbook reaches it."""
        from runbook.execute.clients.ansible import connection_vars
        from runbook.execute.transports import HostSpec
        from runbook.model.hostpattern import implicit_host_vars
        from runbook.model.inventory_yaml import reveal_vault
        from runbook.render.secrets import collect_secrets

        inv, topt = self.target.inventory, dict(self.opt.transport_options)
        hosts: dict[str, Any] = {}
        secrets: set[str] = set()
        for name in self.target.hosts:
            raw = inv.host_vars(name) if name in inv.hosts else {}
            hv = dict(implicit_host_vars(name, reveal_vault(raw)))
            found = collect_secrets(hv, names=self.target.secret_names)
            secrets |= found
            self.redactor.add(found)
            spec = HostSpec.from_vars(
                name, {k: v for k, v in hv.items() if k.startswith(("ansible_", "runbook_"))}
            )
            conn = SimpleNamespace(
                spec=spec, ssh_config=None,
                options=SimpleNamespace(known_hosts=topt.get("known_hosts"), trust_new_hosts=topt.get("trust_new_hosts")),
            )  # fmt: skip
            entry = {k: v for k, v in hv.items() if not k.startswith("ansible_")}
            entry.update(connection_vars(conn, {"become": bool(hv.get("ansible_become"))}))  # type: ignore[arg-type]
            for key in ("ansible_become_user", "ansible_become_method", "ansible_become_password"):
                if key in hv:
                    entry[key] = hv[key]
            if spec.connection == "local":
                entry["ansible_python_interpreter"] = hv.get("ansible_python_interpreter") or sys.executable
            hosts[name] = entry
            hs = self.state.host(name)
            if self.resume is not None:
                self.resume_after[name] = hs.resume_after()
                self.carried[name] = self._carried(hs)
                entry["runbook_resume_after"] = self.resume_after[name]
                entry["runbook_resumed"] = self.carried[name]
            self.hosts[name] = HostRun(name=name, spec=spec, base_vars=None, state=hs)  # type: ignore[arg-type]
            self.section[name] = 0
        return hosts, secrets

    def _groups(self, hosts: dict[str, Any]) -> dict[str, Any]:
        """The inventory ansible-playbook is given: the hosts, and the groups runbook put them in
        (membership only, each host's variables are already its own), so a play's ``hosts: web``
        (or ``web:&prod``) selects what it selects for the native engine."""
        inv = self.target.inventory
        children: dict[str, dict[str, Any]] = {}
        for name in hosts:
            groups = inv.group_names(name) if name in getattr(inv, "hosts", ()) else []
            for g in groups:
                if g not in ("all", "ungrouped"):
                    children.setdefault(str(g), {"hosts": {}})["hosts"][name] = None
        top: dict[str, Any] = {"hosts": hosts}
        if children:
            top["children"] = children
        return {"all": top}

    # ------------------------------------------------------------------------------ the run
    def run(self) -> RunResult:
        from runbook.ansible_collection import collections_path
        from runbook.execute.clients import ansible_io
        from runbook.execute.engine import start_index

        begun = time.monotonic()
        start = start_index(self.rb, self.opt.start_at)  # a bad --start-at: a usage error, nothing ran
        hosts, secrets = self._inventory()
        resumed = frozenset(k for c in self.carried.values() for k in c) if self.resume is not None else None
        self.playbook = playbook_for(self.rb, dry_run=self.opt.dry_run, start=start, resumed=resumed)
        self.lines = task_lines(self.playbook, self.tasks)
        self.emit("run.start", data=self._start_data())
        status, code, message = "success", 0, ""
        refused = self._save_meta()
        if refused:  # the run state cannot be written: refused before any change, always: runs (native)
            self.playbook = playbook_for(self.rb, dry_run=self.opt.dry_run, refused=True)
            self.lines = task_lines(self.playbook, self.tasks)
        vault = ansible_io.Vault()
        declared = set(self.target.secret_names)
        extra = dict(self.opt.extra_vars)
        secrets |= {str(v) for k, v in extra.items() if k in declared and isinstance(v, str)}
        self.redactor.add(secrets)
        try:
            with ansible_io.private_dir() as pdd, self._desk(pdd) as desk_env:
                inventory = ansible_io.to_yaml(self._groups(hosts), lambda t: t in secrets, vault)
                ansible_io.write_private(pdd / "inventory" / "hosts.yml", inventory)
                ansible_io.write_private(
                    pdd / "env" / "extravars",
                    ansible_io.to_yaml(
                        {**extra, "runbook_run_id": self.run_id}, lambda t: t in secrets, vault
                    ),
                )
                ansible_io.write_private(pdd / "project" / "main.yml", self.playbook)
                cmdline = ["--check"] if self.opt.dry_run else []
                if self.opt.diff:
                    cmdline.append("--diff")
                runner = self._in_thread(lambda: ansible_io.run(
                    pdd, playbook="main.yml", inventory=[str(pdd / "inventory" / "hosts.yml")],
                    cmdline=cmdline, vault=vault, on_event=self.on_event, cancel=self.cancel.is_set,
                    limit=",".join(self.target.hosts), forks=self.opt.forks or self.rb.forks or 10,
                    tags=",".join(sorted(self.opt.tags)) or None,
                    skip_tags=",".join(sorted(self.opt.skip_tags)) or None,
                    envvars={"ANSIBLE_COLLECTIONS_PATH": str(collections_path()),  # (the plugins' run.id
                             "RUNBOOK_RUN_ID": self.run_id, "RUNBOOK_PROJECT_DIR": str(self.opt.project_dir),  # and templates/)
                             **desk_env, **self._snapshot_env()},
                    control_key=repr(sorted(str(e.get("ansible_ssh_common_args", "")) for e in hosts.values())),
                ))  # fmt: skip
            if self.cancel.is_set():
                status, code = "interrupted", EXIT_INTERRUPTED
                message = "interrupted: ansible-playbook was stopped; the rescue did not run, nothing was rolled back"
                message += "".join(
                    f"\n{h}: changed before the interrupt"
                    for h, hr in self.hosts.items()
                    if hr.changed_anything
                )
            elif refused:
                status, code, message = "refused", EXIT_PREFLIGHT, f"{refused}; nothing was changed"
            else:
                status, code, message = self._verdict(runner)
        except Exception as exc:  # never a traceback: ansible-runner could not run the playbook
            status, code, message = (
                "failed",
                EXIT_INTERNAL,
                f"ansible-runner: {self.redactor.redact(str(exc))}",
            )
        fault = self.bus.fault or self.state_fault
        status, code, message = fault_verdict(status, code, message, fault, self.hosts.values())
        self._save_end()
        for hr in self.hosts.values():
            self.emit(
                "host.end", hr.name, outcome="failed" if hr.failed else "ok", data={"stats": dict(hr.stats)}
            )
        result = RunResult(self.run_id, status, code, dict(self.hosts), begun, time.monotonic(), message)
        self.emit(
            "run.end", outcome=status, duration=result.ended - begun,
            data={"exit_code": code, "message": self.redactor.redact(message), "stats": {h: hr.stats for h, hr in self.hosts.items()}},
        )  # fmt: skip
        return result

    # ------------------------------------------------------------------------------ run state
    def _save_meta(self) -> str:
        """The run's state on disk before anything runs (as native: what `runbook rollback --run ID`
        and --resume read); why it cannot be written, else empty."""
        from runbook.execute import leftovers
        from runbook.execute.faults import StateWriteError
        from runbook.execute.state import mask_extra_vars

        if self.opt.dry_run:
            return ""
        saved, secret = mask_extra_vars(self.opt.extra_vars, self.redactor)
        meta: dict[str, Any] = {"extra_vars": saved, "secret_extra_vars": secret, "limit": self.opt.limit}
        meta["secret_names"] = sorted(self.redactor.names)
        meta.update(leftovers.owner_meta())
        if self.opt.inventory_sources:
            meta["inventory"] = list(self.opt.inventory_sources)
        self.state.meta.update(meta)
        try:
            self.state.save(True)
        except StateWriteError as exc:
            return exc.message
        return ""

    def _persist(self, durable: bool = False) -> None:
        from runbook.execute.faults import StateWriteError

        if self.opt.dry_run:
            return
        try:
            self.state.save(durable)
        except StateWriteError as exc:  # the run goes on under Ansible; the verdict says so
            self.state_fault = self.state_fault or exc.message

    def _snapshot_env(self) -> dict[str, str]:
        """runbook.core.step saves each snapshot here, fsynced, before the change it guards (under
        ``runbook_run_id``/host/task uuid): a task still running when the run was stopped left its
        snapshots there, and a no_log task's result (censored in its event) does too."""
        if self.opt.dry_run:
            return {}
        return {"RUNBOOK_SNAPSHOT_DIR": str(self.state.dir / "snapshots")}

    def _saved_snapshots(self, host: str, uuid: str) -> list[dict[str, Any]]:
        import json

        if not uuid or self.opt.dry_run:
            return []
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host)
        where = self.state.dir / "snapshots" / self.run_id / safe
        found = []
        for path in where.glob(f"{uuid}-*.json"):
            try:
                found.append((int(path.stem.rpartition("-")[2]), json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
        return [snap for _, snap in sorted(found, key=lambda x: x[0]) if isinstance(snap, dict)]

    def _in_flight(self) -> None:
        """Steps still running when the run stopped (interrupted): what they snapshotted is an entry
        (status running, as native's), so `runbook rollback --run ID` undoes it."""
        from runbook.execute.attempts import as_written
        from runbook.execute.state import Entry

        for (host, key), (info, uuid) in list(self.running.items()):
            step = self.rb.find_step(key)
            snaps = self._saved_snapshots(host, uuid)
            if step is None or not snaps or host not in self.hosts:
                continue
            self.hosts[host].state.entries.append(Entry(
                "steps", info.index, info.name, step.module, as_written(step.args, self.redactor.redact),
                snapshots=snaps, status="running", changed=True, has_undo_step=step.undo is not None, key=step.key,
            ))  # fmt: skip
        self.running.clear()

    def _save_end(self) -> None:
        self._in_flight()
        for hr in self.hosts.values():
            if hr.rollback_status is not None:
                hr.state.status = "rolled_back" if hr.rollback_status == "ok" else "rollback_failed"
            elif hr.state.status == "pending":
                hr.state.status = "failed" if hr.failed else "ok"
        self._persist(True)

    def _carried(self, hs: HostState) -> dict[str, Any]:
        """What a resumed host gets back of the earlier run, per registered variable: its saved
        registered results, and for each step it changed, the first snapshot (``runbook_snapshot``,
        what the compiled rescue undoes from) and ``changed`` (a step's own undo: runs on it)."""
        import json

        regs = {register_name(s): s for s in self.rb.steps}
        out: dict[str, Any] = {}
        for k, v in hs.facts.items():
            if k in regs:
                out[k] = json.loads(json.dumps(v, default=str))
        for e in hs.entries:
            if e.phase != "steps" or e.status == "rolled_back" or e.loop_index is not None:
                continue
            step = self.rb.steps[e.index] if 0 <= e.index < len(self.rb.steps) else None
            if step is None or e.step_key != step.key:  # (a fallback step's entry: not carried)
                continue
            reg = register_name(step)
            value = dict(out[reg]) if isinstance(out.get(reg), dict) else {}
            if e.snapshots and "runbook_snapshot" not in value:
                value["runbook_snapshot"] = json.loads(json.dumps(e.snapshots[0], default=str))
            value["changed"] = bool(value.get("changed")) or e.changed
            out[reg] = value
        return out

    def _keep(self, hr: HostRun, info: TaskInfo, outcome: str, res: dict[str, Any], ignored: bool) -> None:
        """A steps-phase task ended: its changes as state entries (snapshots first), the step counted
        completed (a --resume does not run it again), its registered result saved."""
        from runbook.execute.attempts import as_written
        from runbook.execute.state import Entry

        step = self.rb.find_step(info.key) if info.key else None
        if step is None or self.opt.dry_run:
            return
        red = self.redactor.redact
        results = res.get("results") if isinstance(res.get("results"), list) else None
        if "censored" in res and results is None:  # no_log: the snapshots it saved on disk
            _, uuid = self.running.get((hr.name, info.key), (info, ""))
            res = {**res, "runbook_snapshots": self._saved_snapshots(hr.name, uuid)}
        durable = False
        for n, r in enumerate(results if results is not None else [res]):
            if not isinstance(r, dict):
                continue
            snaps = [x for x in r.get("runbook_snapshots") or () if isinstance(x, dict)]
            changed = bool(r.get("changed"))
            if not snaps and not (changed and (step.undo is not None or not r.get("failed"))):
                continue
            loop_vars = None
            if results is not None:
                var = str(r.get("ansible_loop_var") or "item")
                loop_vars = {var: r.get(var)}
            item = self.redactor.redact_obj(loop_vars) if loop_vars is not None else None
            done = "failed" if r.get("failed") else "changed" if changed else "ok"
            e = Entry(
                "steps", info.index, info.name, step.module, as_written(step.args, red), item=item,
                snapshots=snaps, status=done, changed=changed, has_undo_step=step.undo is not None,
                key=step.key, loop_index=n if results is not None else None, item_masked=item != loop_vars,
            )  # fmt: skip
            if not snaps and step.undo is None:  # only reported by a rollback (as native)
                e.args = e.item = None
            hr.state.entries.append(e)
            durable = durable or bool(snaps) or step.undo is not None
        if outcome != "failed" or ignored:
            hr.state.last_completed = info.index
        if step.register and not step.no_log and step.key == self.rb.steps[info.index].key:
            hr.state.facts[step.register] = {
                k: v for k, v in res.items() if not k.startswith("_ansible") and k != "runbook_snapshots"
            }
        self._persist(durable)

    def _undone(self, hr: HostRun, index: int | None, ok: bool) -> None:
        """The rescue undid a step (``index``; None: the runbook's rollback: list, every step)."""
        for e in hr.state.entries:
            if e.phase == "steps" and e.status != "rolled_back" and index in (None, e.index):
                e.status = "rolled_back" if ok else "rollback_failed"
        self._persist(True)

    @contextlib.contextmanager
    def _desk(self, pdd: Any) -> Iterator[dict[str, str]]:
        """The approval desk of the run (approve: steps ask runbook's console through it)."""
        if self.opt.dry_run or not any(
            getattr(kinds.get(s.module), "asks_approval", False) for s in self.rb.all_steps()
        ):
            yield {}
            return
        from runbook.session.ansible_approval import Desk

        self.desk = Desk(pdd / "approval.sock", self._approve)
        with self.desk:
            yield {"RUNBOOK_APPROVAL_SOCKET": str(self.desk.path)}

    def _approve(self, req: dict[str, Any]) -> dict[str, Any]:
        """An approve: step asks (runbook.core.step, on a host): decided as the native engine decides
        (runbook.execute.approval: --yes with the run's approvers, else the console's confirm, else
        no approval), recorded as an ``approval`` event."""
        from runbook.execute.approval import Identity, decide
        from runbook.execute.magic import operator

        host = str(req.get("host") or "")
        args = req.get("args") if isinstance(req.get("args"), dict) else {}
        info = (
            self._info(host, str(req.get("task") or ""), str(req.get("path") or ""))
            if host in self.hosts
            else None
        )
        if info is None:
            return {"ok": False, "msg": "not approved (the step is not one of this run's)"}
        label = self.redactor.redact(str(req.get("task") or info.name))
        deadline = time.monotonic() + ORDER_WAIT  # the step's start is shown first (as native), bounded
        while (
            info.phase == "steps"
            and info.key
            and (host, info.key) not in self.running
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        who_runs = operator()
        login = f"{who_runs['user']}@{who_runs['host']}"
        try:
            d = decide(
                args, f"[{host}] {args.get('prompt') or label}", self.opt.approvers or [Identity(login, "login")],
                yes=self.opt.yes, confirm=self.opt.confirm, ask_name=self.opt.ask_name,
            )  # fmt: skip
            ok, who, details = d.ok, d.who, d.details()
        except (EOFError, OSError):  # the terminal went away: no answer is no approval
            ok, who, details = False, f"{login}: no answer (the terminal closed)", {}
        self.emit("approval", host, step=label, phase=info.phase, outcome="approved" if ok else "denied",
                  data={"approved_by": who, "prompt": str(args.get("prompt", label)), **details})  # fmt: skip
        return {"ok": ok, "msg": f"approved by {who}" if ok else f"not approved ({who})"}

    def _in_thread(self, fn: Any) -> Any:
        """ansible-runner in a worker thread, so an interrupt (SIGINT/SIGTERM: KeyboardInterrupt, or
        a second Ctrl-C) reaches this thread and cancels the run: ansible-runner stops
        ansible-playbook when its cancel callback says so. Every wait is bounded."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["runner"] = fn()
            except BaseException as exc:  # handed to the calling thread
                box["error"] = exc

        before = descendants(os.getpid())
        worker = threading.Thread(target=work, name="ansible-runner", daemon=True)
        worker.start()
        while worker.is_alive():
            try:
                worker.join(0.2)
            except BaseException:  # KeyboardInterrupt, Aborted: stop ansible-playbook, then report
                self.cancel.set()
                # ansible-runner kills ansible-playbook's process group; a command a connection
                # started in its own session (the local connection does) is stopped here too
                tree = descendants(os.getpid()) - before
                signal_all(tree, signal.SIGTERM)
                worker.join(CANCEL_WAIT)
                signal_all(tree, signal.SIGKILL)
                break
        if "error" in box and not self.cancel.is_set():
            raise box["error"]
        return box.get("runner")

    def _verdict(self, runner: Any) -> tuple[str, int, str]:
        names = self.target.hosts
        if self.preflight_failed:
            msg = "pre-flight failed on " + ", ".join(self.preflight_failed) + "; nothing was changed"
            msg += "\n" + "\n".join(f"{h}: {self.hosts[h].failure}" for h in self.preflight_failed)
            return "preflight_failed", EXIT_PREFLIGHT, msg
        missing = [h for h in names if not self.hosts[h].records and runner.rc not in (0, None)]
        if missing and runner.rc != 0 and not any(self.hosts[h].failed for h in names):
            why = (
                "\n".join(o for o in self.output if o).strip()
                or f"ansible-playbook ended ({runner.status}, rc {runner.rc})"
            )
            for h in names:
                self.hosts[h].failed, self.hosts[h].refused = True, True
                self.hosts[h].failure = why[-2000:]
        # Ansible stopped the later serial batches (max_fail_percentage): their hosts never started
        waiting = [
            h for h in names
            if h not in self.seen and not any(r.phase in ("steps", "always") for r in self.hosts[h].records)
        ]  # fmt: skip
        failed = any(self.hosts[h].failed for h in names)
        aborted = ""
        if failed and waiting and not all(self.hosts[h].failed for h in waiting):
            aborted = (
                f"{len([h for h in waiting if not self.hosts[h].failed])} host(s) not started: a batch failed "
                f"past max_fail_percentage {self.rb.max_fail_percentage:g}%"
            )
        return verdict(self.hosts, names, aborted, self.opt.dry_run)

    # ------------------------------------------------------------------------------ events in
    def _info(self, host: str, task: str, path: str = "") -> TaskInfo | None:
        line = path.rpartition(":")[2]
        if path.rpartition(":")[0].endswith("main.yml") and line.isdigit() and int(line) in self.lines:
            return self.lines[int(line)]
        at = self.section.get(host, 0)
        for info in self.tasks.get(task, ()):
            if PHASES.index(info.phase) >= at:
                return info
        return None

    def on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event", "")
        data = ev.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.play_phase = "preflight" if str(data.get("play", "")).endswith(": preflight") else "steps"
            self.emit("phase.start", phase=self.play_phase)
            return
        if kind in ("warning", "error") or (kind == "verbose" and ev.get("stdout")):
            self.output.append(self.redactor.redact(str(ev.get("stdout", ""))))
            return
        host, task = data.get("host"), str(data.get("task", ""))
        if host in self.hosts and kind.startswith("runner_item_on_"):
            info = self._info(host, task, str(data.get("task_path") or ""))
            skipped = (
                info is not None
                and info.phase == "steps"
                and 0 <= info.index <= self.resume_after.get(host, -1)
            )
            if info is not None and info.phase != "rollback" and not skipped:
                self._item(self.hosts[host], info, kind, data)
            return
        if host not in self.hosts or not kind.startswith("runner_on_") or task == FAIL_TASK:
            if host in self.hosts and task == FAIL_TASK and kind == "runner_on_failed":
                self._rescued(self.hosts[host])
            return
        info = self._info(host, task, str(data.get("task_path") or ""))
        if info is None:
            return
        if self.play_phase == "steps":
            self.seen.add(host)
        if info.phase == "steps" and 0 <= info.index <= self.resume_after.get(host, -1):
            return  # completed by the run this one resumes: not run again, not shown (as native)
        if task and info.index >= 0 and task != info.name:  # the name as Ansible rendered it
            shown = self.redactor.redact(task)
            info = replace(info, name=shown, undo_of=shown.removeprefix("undo: ") if info.undo_of else None)
        hr = self.hosts[host]
        if kind == "runner_on_start":
            if info.phase == "steps" and info.key:
                self.running[(host, info.key)] = (info, str(data.get("task_uuid") or ""))
            self._start(hr, info)
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            self._end(hr, info, kind, data)
            self.running.pop((host, info.key), None)

    def _item(self, hr: HostRun, info: TaskInfo, kind: str, data: dict[str, Any]) -> None:
        """One loop item done: ``step.item`` (its step.end follows the items), named as native names
        it: the step's name and the item (its loop_control label)."""
        res = data.get("res") or {}
        key = (hr.name, info.phase, info.index)
        index = self.items.get(key, 0)
        self.items[key] = index + 1
        label = res.get("_ansible_item_label", res.get("item"))
        shown = label if isinstance(label, str) else repr(label)
        status = kind.removeprefix("runner_item_on_")
        outcome = {"ok": "changed" if res.get("changed") else "ok", "skipped": "skipped"}.get(
            status, "failed"
        )
        msg = self.redactor.redact(str(res.get("msg") or "")) if outcome == "failed" else ""
        self.emit("step.item", hr.name, step=self.redactor.redact(f"{info.name} (item={shown[:80]})"), phase=info.phase,
                  outcome=outcome, data={"index": index, "msg": msg, "module": info.module})  # fmt: skip

    def _start(self, hr: HostRun, info: TaskInfo) -> None:
        at = PHASES.index(info.phase)
        if info.phase == "rollback" and self.section[hr.name] < at:  # (native: no phase.start)
            self.emit(
                "rollback.start", hr.name, phase="rollback", data={"reason": self.redactor.redact(hr.failure)}
            )
        elif (
            info.phase == "always"
            and self.section[hr.name] < at
            and not any(self.section[h] >= at for h in self.section)
        ):
            self.emit("phase.start", phase="always")
        self.section[hr.name] = max(self.section[hr.name], at)
        self.started[(hr.name, info.name)] = time.monotonic()
        if info.phase != "rollback" or info.own_undo:
            self.emit(
                "step.start",
                hr.name,
                step=info.name,
                phase=info.phase,
                data={"module": info.module, "index": info.index},
            )

    def _end(self, hr: HostRun, info: TaskInfo, kind: str, data: dict[str, Any]) -> None:
        res = data.get("res") or {}
        took = time.monotonic() - self.started.pop((hr.name, info.name), time.monotonic())
        red = self.redactor.redact
        asks = getattr(kinds.get(info.module), "asks_approval", False)  # (who approved: shown as native)
        msg = red(str(res.get("msg") or "")) if kind != "runner_on_ok" or res.get("failed") or asks else ""
        rc = res.get("rc") if isinstance(res.get("rc"), int) else None
        stdout, stderr = red(str(res.get("stdout") or "")), red(str(res.get("stderr") or ""))
        ignored = bool(data.get("ignore_errors"))
        if kind == "runner_on_ok":
            outcome = "changed" if res.get("changed") else "ok"
        elif kind == "runner_on_skipped":
            outcome = "skipped"
        else:
            outcome = "failed"
        if info.phase == "rollback":
            return self._rollback_step(hr, info, outcome, took, msg)
        commands = [str(c) for c in res.get("runbook_commands") or () if c]
        command = red("\n".join(commands)) if commands else None
        planned = [
            {
                "kind": str(p.get("kind", "")),
                "summary": red(str(p.get("summary", ""))),
                "diff": red(str(p.get("diff") or "")),
            }
            for p in res.get("runbook_planned") or ()
            if isinstance(p, dict)
        ]
        rec = StepRecord(info.phase, info.index, info.name, info.module, outcome, rc=rc, duration=took, msg=msg,
                         command=command, stdout=stdout, stderr=stderr, planned=planned,
                         attempts=int(res.get("attempts") or 1))  # fmt: skip
        hr.records.append(rec)
        hr.stats[outcome if outcome != "failed" or not ignored else "ok"] += 1
        if outcome == "changed" and info.phase == "steps":  # (always: changes after the verdict, as native)
            hr.changed_anything = True
        if info.phase == "steps":
            self._keep(hr, info, outcome, res, ignored)
        unreachable = kind == "runner_on_unreachable"
        self.emit(
            "step.end", hr.name, step=info.name, phase=info.phase, outcome=outcome, rc=rc, duration=took,
            data={"msg": msg, "module": info.module, "index": info.index, "command": command, "stdout": stdout, "stderr": stderr, **({"planned": planned} if planned else {}), **({"ignored": True} if ignored else {})},
        )  # fmt: skip
        if outcome != "failed" or ignored or hr.failed:
            return
        hr.failed = True
        hr.unreachable = unreachable
        if unreachable:
            hr.stats["unreachable"] = 1
        if info.phase == "preflight":
            hr.failure = f"pre-flight '{info.name}': {msg}"
            self.preflight_failed.append(hr.name)
        else:
            hr.failure = f"step '{info.name}' failed: {msg}"
            refusal = unreachable or info.module == "lock" or bool(res.get("runbook_refused"))
            hr.refused = refusal and not hr.changed
        nothing_to_undo = self.rb.rollback == "none" or (
            not hr.changed_anything and not isinstance(self.rb.rollback, tuple)
        )
        if info.phase == "steps" and nothing_to_undo:
            self.section[hr.name] = PHASES.index("rollback")  # nothing to undo: native emits no rollback

    def _rollback_step(self, hr: HostRun, info: TaskInfo, outcome: str, took: float, msg: str) -> None:
        if outcome == "skipped":  # the step did not change (or took no snapshot): nothing to undo
            return
        if info.own_undo:  # a step of its own, as native runs it, then the rollback's record of it
            self.emit("step.end", hr.name, step=info.name, phase="rollback", outcome=outcome, duration=took,
                      data={"msg": msg, "module": info.module})  # fmt: skip
        done = "failed" if outcome == "failed" else "rolled_back"
        hr.records.append(
            StepRecord("rollback", info.index, info.name, info.module, done, duration=took, msg=msg)
        )
        hr.stats["failed" if done == "failed" else "rolled_back"] += 1
        if not isinstance(self.rb.rollback, tuple):
            self._undone(hr, info.index, done != "failed")
        if done == "failed":
            hr.rollback_problems.append(f"{hr.name}: step '{info.undo_of or info.name}': {msg}")
        self.emit(
            "rollback.step", hr.name, phase="rollback", outcome=done, duration=took,
            data={"step": info.undo_of or info.name, "module": info.module, "index": info.index, "msg": msg},
        )  # fmt: skip
        if done == "failed":
            self._rollback_end(hr, ok=False)

    def _rescued(self, hr: HostRun) -> None:
        """The rescue reached its closing ``fail``: every undo task succeeded."""
        if (
            hr.rollback_status is None
            and self.section[hr.name] >= PHASES.index("rollback")
            and (any(r.phase == "rollback" for r in hr.records) or isinstance(self.rb.rollback, tuple))
        ):
            self._rollback_end(hr, ok=True)

    def _rollback_end(self, hr: HostRun, *, ok: bool) -> None:
        if hr.rollback_status is not None:
            return
        hr.rollback_status = "ok" if ok else "failed"
        if isinstance(self.rb.rollback, tuple):
            self._undone(hr, None, ok)  # (an explicit rollback: list undoes the whole run)
        self.emit("rollback.end", hr.name, phase="rollback", outcome="ok" if ok else "failed",
                  data={"problems": list(hr.rollback_problems)})  # fmt: skip
