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

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import yaml

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
from runbook.execute.state import HostState

EXIT_INTERNAL = 70
CANCEL_WAIT = 60.0  # seconds ansible-playbook is given to stop once cancelled
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


def task_map(rb: Any) -> dict[str, list[TaskInfo]]:
    """Task name -> the runbook steps it may be (in phase order; one name may be in two phases)."""
    out: dict[str, list[TaskInfo]] = {}

    def add(name: str, info: TaskInfo) -> None:
        out.setdefault(name, []).append(info)

    for s in rb.preflight:
        add(s.name or s.module, TaskInfo("preflight", s.index, s.label, s.module))
    for s in rb.steps:
        add(s.name or s.module, TaskInfo("steps", s.index, s.label, s.module))
        for f in s.fallback or ():
            add(f.name or f.module, TaskInfo("steps", s.index, f.label, f.module))
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


def playbook_for(rb: Any, *, dry_run: bool) -> str:
    """The compiled playbook as run here: the window was checked by the session (check_window,
    which --force-window skips), a plan takes no deploy lock (as the native engine)."""
    from runbook.compile import compile_runbook, to_yaml

    plays = compile_runbook(rb)
    for play in plays:
        tasks = [t for t in play["tasks"] if t.get("name") != WINDOW_TASK]
        if dry_run:
            for t in tasks:
                for key in ("block", "always"):
                    if key in t:
                        t[key] = [x for x in t[key] if x.get("name") not in LOCK_TASKS]
        play["tasks"] = tasks
    return to_yaml([p for p in plays if p["tasks"]])


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
        self.playbook = playbook_for(self.rb, dry_run=options.dry_run)  # before anything runs
        self.lines = task_lines(self.playbook, self.tasks)
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
            self.hosts[name] = HostRun(name=name, spec=spec, base_vars=None, state=HostState())  # type: ignore[arg-type]
            self.section[name] = 0
        return hosts, secrets

    # ------------------------------------------------------------------------------ the run
    def run(self) -> RunResult:
        from runbook.ansible_collection import collections_path
        from runbook.execute.clients import ansible_io

        begun = time.monotonic()
        hosts, secrets = self._inventory()
        self.emit("run.start", data=self._start_data())
        status, code, message = "success", 0, ""
        vault = ansible_io.Vault()
        declared = set(self.target.secret_names)
        extra = dict(self.opt.extra_vars)
        secrets |= {str(v) for k, v in extra.items() if k in declared and isinstance(v, str)}
        self.redactor.add(secrets)
        try:
            with ansible_io.private_dir() as pdd:
                inventory = ansible_io.to_yaml({"all": {"hosts": hosts}}, lambda t: t in secrets, vault)
                ansible_io.write_private(pdd / "inventory" / "hosts.yml", inventory)
                ansible_io.write_private(
                    pdd / "env" / "extravars", ansible_io.to_yaml(extra, lambda t: t in secrets, vault)
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
                             "RUNBOOK_RUN_ID": self.run_id, "RUNBOOK_PROJECT_DIR": str(self.opt.project_dir)},  # and templates/)
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
            else:
                status, code, message = self._verdict(runner)
        except Exception as exc:  # never a traceback: ansible-runner could not run the playbook
            status, code, message = (
                "failed",
                EXIT_INTERNAL,
                f"ansible-runner: {self.redactor.redact(str(exc))}",
            )
        status, code, message = fault_verdict(status, code, message, self.bus.fault, self.hosts.values())
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
        waiting = [h for h in names if not any(r.phase in ("steps", "always") for r in self.hosts[h].records)]
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
            if info is not None and info.phase != "rollback":
                self._item(self.hosts[host], info, kind, data)
            return
        if host not in self.hosts or not kind.startswith("runner_on_") or task == FAIL_TASK:
            if host in self.hosts and task == FAIL_TASK and kind == "runner_on_failed":
                self._rescued(self.hosts[host])
            return
        info = self._info(host, task, str(data.get("task_path") or ""))
        if info is None:
            return
        if task and info.index >= 0 and task != info.name:  # the name as Ansible rendered it
            shown = self.redactor.redact(task)
            info = replace(info, name=shown, undo_of=shown.removeprefix("undo: ") if info.undo_of else None)
        hr = self.hosts[host]
        if kind == "runner_on_start":
            self._start(hr, info)
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            self._end(hr, info, kind, data)

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
        msg = red(str(res.get("msg") or "")) if kind != "runner_on_ok" or res.get("failed") else ""
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
            hr.refused = (unreachable or info.module == "lock") and not hr.changed_anything
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
        self.emit("rollback.end", hr.name, phase="rollback", outcome="ok" if ok else "failed",
                  data={"problems": list(hr.rollback_problems)})  # fmt: skip
