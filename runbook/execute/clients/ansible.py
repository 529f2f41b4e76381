"""ansible-runner, on the control machine. Imported only when an Ansible step runs.

``playbook``: an ``ansible.playbook`` step (one host). ``modules``: one Ansible module for every
host of a batch at once (runbook.execute.gather hands it the hosts that joined), as ONE
ansible-playbook process: a one-task play whose task takes each host's own (already rendered)
arguments from a host variable. How secrets stay out of the private data dir: ansible_io."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from runbook.execute.clients import ansible_io
from runbook.execute.transports.base import Transport
from runbook.render.secrets import collect_secrets

RUNNER_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
ARGS_VAR, CHECK_VAR, DIFF_VAR, NO_LOG_VAR = "__runbook_args", "__runbook_check", "__runbook_diff", "__runbook_no_log"
TIMEOUT_VAR = "__runbook_timeout"  # the step's timeout, per host (Ansible's task timeout; 0: none)
# how many ansible-playbook processes this process started (the bench and tests count them)
INVOCATIONS = {"count": 0}
_count_lock = threading.Lock()


def _missing() -> dict[str, Any] | None:
    try:
        import ansible_runner  # noqa: F401
    except ImportError:
        return {"rc": 127, "status": "failed", "failed_task": "ansible-runner is not installed (pip install 'runbook[ansible]')"}
    return None


def _counted() -> None:
    with _count_lock:
        INVOCATIONS["count"] += 1


def _status(kind: str, res: Mapping[str, Any]) -> str:
    status = kind.removeprefix("runner_on_")
    return "changed" if status == "ok" and res.get("changed") else status


# ------------------------------------------------------------------------------ ansible.playbook
def playbook(
    params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event
) -> dict[str, Any]:
    missing = _missing()
    if missing:
        return missing
    tasks: list[str] = []
    failed: dict[str, str] = {}
    stdout: list[str] = []
    diffs: list[str] = []
    note: Callable[[str], None] = params.get("_note") or (lambda line: None)

    stats: dict[str, Any] = {}

    def on_event(ev: dict[str, Any]) -> None:
        kind = ev.get("event", "")
        data = ev.get("event_data", {})
        if ev.get("stdout"):
            stdout.append(ev["stdout"])
        if kind == "playbook_on_stats":  # (Runner.stats would read job_events/, never written)
            stats.update({k: v for k, v in data.items() if isinstance(v, dict)})
        if kind in RUNNER_EVENTS:
            res = data.get("res", {}) or {}
            status = _status(kind, res)
            line = f"{status}: {data.get('task', '?')} [{data.get('host', '?')}]"
            tasks.append(line)
            note(line)
            if status in ("failed", "unreachable") and not data.get("ignore_errors"):
                failed["task"] = f"{data.get('task')}: {res.get('msg') or res.get('stderr') or status}"[:500]
            if status == "changed":
                diffs.extend(render_diffs(res.get("diff"), f"{data.get('task')} [{data.get('host')}]"))

    vault = ansible_io.Vault()
    secret = _secret_test(params.get("secrets"))
    with ansible_io.private_dir() as pdd:
        ansible_io.write_private(pdd / "env" / "extravars", ansible_io.to_yaml(dict(params.get("extravars") or {}), secret, vault))
        cmdline = [flag for flag, on in (("--check", params.get("check")), ("--diff", params.get("diff"))) if on]
        _counted()
        r = ansible_io.run(
            pdd,
            playbook=params["playbook"],
            inventory=[ansible_io.os.path.abspath(s) if ansible_io.os.path.exists(s) else s for s in params.get("inventory") or []],
            cmdline=cmdline,
            vault=vault,
            on_event=on_event,
            cancel=cancel.is_set,
            limit=params.get("limit"),
            forks=params.get("forks"),
            timeout=params.get("timeout"),
            tags=params.get("tags"),
            skip_tags=params.get("skip_tags"),
        )
    per_host: dict[str, dict[str, int]] = {}
    for key, hosts in stats.items():
        if isinstance(hosts, dict):
            for h, n in hosts.items():
                per_host.setdefault(h, {})[key] = n
    return {
        "rc": r.rc,
        "status": r.status,
        "stats": per_host,
        "tasks": tasks,
        "failed_task": failed.get("task"),
        "stdout": "\n".join(stdout)[-65536:],
        "diffs": diffs,
    }


def unsafe_extravars(extravars: dict[str, Any]) -> str:
    """The extra vars as YAML for ``-e @file`` with every string tagged ``!unsafe`` (no secret
    among them: see ansible_io.to_yaml for the vaulted form)."""
    return ansible_io.to_yaml(extravars, lambda text: False, ansible_io.Vault())


def _secret_test(values: Any) -> Callable[[str], bool]:
    found = [s for s in values or () if isinstance(s, str) and s]
    return lambda text: any(s in text for s in found)


def render_diffs(diff: Any, where: str) -> list[str]:
    """Ansible's diff results (before/after, or ``prepared`` text) as unified diffs."""
    import difflib

    items = diff if isinstance(diff, list) else [diff] if isinstance(diff, dict) else []
    out: list[str] = []
    for d in items:
        if not isinstance(d, dict):
            continue
        if d.get("prepared"):
            out.append(str(d["prepared"]))
            continue
        before, after = d.get("before"), d.get("after")
        if before is None and after is None:
            continue
        if not isinstance(before, str) or not isinstance(after, str):

            before = before if isinstance(before, str) else json.dumps(before, indent=2, sort_keys=True, default=str) + "\n"
            after = after if isinstance(after, str) else json.dumps(after, indent=2, sort_keys=True, default=str) + "\n"
        text = "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=str(d.get("before_header") or where),
                tofile=str(d.get("after_header") or where),
            )
        )
        if text:
            out.append(text)
    return out


# ------------------------------------------------------------------------------ Ansible modules
def connection_vars(transport: Transport, params: Mapping[str, Any]) -> dict[str, Any]:
    """A host's inventory entry for Ansible, from runbook's view of it: its connection variables
    (address, port, user, key, password), runbook's known_hosts and ssh_config (host keys are
    checked), and the step's become."""
    spec = transport.spec
    hv = dict(spec.vars or {})
    out: dict[str, Any] = {k: v for k, v in hv.items() if k.startswith("ansible_") and isinstance(v, (str, int, float, bool, list, dict))}
    out.pop("ansible_connection", None)
    if spec.connection == "local":
        out["ansible_connection"] = "local"
    else:
        out["ansible_connection"] = "ssh" if spec.connection in ("ssh", "smart", "paramiko") else spec.connection
        out["ansible_host"] = spec.address
        if spec.port:
            out["ansible_port"] = spec.port
        if spec.user:
            out["ansible_user"] = spec.user
        if spec.private_key_file:
            out["ansible_ssh_private_key_file"] = spec.private_key_file
        ssh_args = [str(hv.get("ansible_ssh_common_args") or "").strip()]
        options = getattr(transport, "options", None)
        known_hosts = getattr(options, "known_hosts", None)
        if known_hosts:
            ssh_args.append(f"-o UserKnownHostsFile={known_hosts}")
        if getattr(options, "trust_new_hosts", False):
            ssh_args.append("-o StrictHostKeyChecking=accept-new")
        else:
            ssh_args.append("-o StrictHostKeyChecking=yes")
        ssh_config = getattr(transport, "ssh_config", None)
        if ssh_config:
            ssh_args.append(f"-F {ssh_config}")
        out["ansible_ssh_common_args"] = " ".join(a for a in ssh_args if a)
    # as Ansible's implicit localhost: a local host runs modules with the control machine's own
    # Python (the one running runbook, where ansible-core is installed) unless the host says
    local_python = sys.executable if spec.connection == "local" else None
    out.setdefault("ansible_python_interpreter", spec.python or local_python or "auto_silent")
    if params.get("become"):
        out["ansible_become"] = True
        for key in ("user", "method", "flags"):
            if params.get(f"become_{key}"):
                out[f"ansible_become_{key}"] = params[f"become_{key}"]
    else:
        out["ansible_become"] = False
    return out


def _ref(var: str) -> str:
    return "{{ " + var + " }}"


def play(module: str, name: str, keys: list[str]) -> str:
    """The one-task play. Each argument is taken from the host's own ``__runbook_args`` (a key a
    host does not give is omitted for it); a whole-dict template would be free-form text to the
    free-form modules (command, shell, raw)."""
    import yaml

    args = {k: "{{ " + f"{ARGS_VAR}[{json.dumps(k)}] | default(omit)" + " }}" for k in keys}
    task = {
        "name": name,
        module: args,
        "check_mode": _ref(CHECK_VAR),
        "diff": _ref(DIFF_VAR),
        "no_log": _ref(NO_LOG_VAR),
        "timeout": _ref(TIMEOUT_VAR),
    }
    doc = [{"name": "runbook", "hosts": "all", "gather_facts": False, "tasks": [task]}]
    return yaml.safe_dump(doc, sort_keys=False, width=1 << 16)


def modules(
    jobs: list[tuple[str, dict[str, Any], Transport, Callable[[str], None]]],
    cancel: threading.Event,
    deliver: Callable[[str, Any], None] | None = None,
) -> dict[str, Any]:
    """Run one module on every job's host in ONE ansible-playbook process; per host: ``status``
    (ok/changed/failed/skipped/unreachable/missing), Ansible's result ``res``, ``diffs``."""
    missing = _missing()
    if missing:
        return {h: {"status": "failed", "res": {"msg": missing["failed_task"]}} for h, *_ in jobs}
    first = jobs[0][1]
    results: dict[str, dict[str, Any]] = {}
    notes = {h: note for h, _p, _t, note in jobs}
    started: dict[str, float] = {}
    output: list[str] = []

    def on_event(ev: dict[str, Any]) -> None:
        kind = ev.get("event", "")
        data = ev.get("event_data", {}) or {}
        host = data.get("host")
        if kind == "runner_on_start" and host in notes:
            started[host] = time.monotonic()
            notes[host](f"ansible: {first['module']} started")
        elif kind in RUNNER_EVENTS and host in notes:
            res = data.get("res", {}) or {}
            status = _status(kind, res)
            took = time.monotonic() - started.get(host, time.monotonic())
            results[host] = {"status": status, "res": res, "diffs": render_diffs(res.get("diff"), f"{first['module']} [{host}]")}
            msg = res.get("msg") if status in ("failed", "unreachable") else ""
            notes[host](f"ansible: {status} ({took:.1f}s)" + (f": {str(msg)[:200]}" if msg else ""))
            if deliver is not None:
                deliver(host, results[host])
        elif kind in ("warning", "error") or (kind == "verbose" and ev.get("stdout")):
            output.append(str(ev.get("stdout", "")))

    vault = ansible_io.Vault()
    secret = _secret_test([s for _h, p, _t, _n in jobs for s in p.get("secrets") or ()])
    hosts: dict[str, Any] = {}
    for host, p, transport, _note in jobs:
        entry = connection_vars(transport, p)
        entry.update({ARGS_VAR: dict(p.get("args") or {}), CHECK_VAR: bool(p.get("check")), DIFF_VAR: bool(p.get("diff")), NO_LOG_VAR: bool(p.get("no_log")), TIMEOUT_VAR: max(0, int(p.get("timeout") or 0))})
        hosts[host] = entry
    conn_secrets = {s for entry in hosts.values() for s in collect_secrets(entry)}  # passwords
    with ansible_io.private_dir() as pdd:
        inventory = ansible_io.to_yaml({"all": {"hosts": hosts}}, lambda t: t in conn_secrets or secret(t), vault)
        ansible_io.write_private(pdd / "inventory" / "hosts.yml", inventory)
        ansible_io.write_private(pdd / "project" / "main.yml", play(first["module"], "runbook step", sorted({str(k) for _h, p, _t, _n in jobs for k in p.get("args") or {}})))
        _counted()
        r = ansible_io.run(
            pdd,
            playbook="main.yml",
            inventory=[str(pdd / "inventory" / "hosts.yml")],
            cmdline=[],
            vault=vault,
            on_event=on_event,
            cancel=cancel.is_set,
            forks=max(1, min(len(jobs), 50)),
            control_key=json.dumps(sorted(str(e.get("ansible_ssh_common_args", "")) for e in hosts.values())),
        )
    for host, *_ in jobs:
        if host not in results:  # no result for it: ansible-playbook stopped before (a syntax error ...)
            why = "\n".join(o for o in output if o).strip() or f"ansible-playbook ended ({r.status}, rc {r.rc}) without a result for this host"
            results[host] = {"status": "failed", "res": {"msg": why[-4000:]}, "diffs": []}
    return results


