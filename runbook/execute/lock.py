"""Per-host deploy lock: an atomic ``mkdir`` on the host with a details file (Kamal's habit), released
on exit; a lock whose holder is gone (same control host, dead PID) or older than its TTL is stale.

The lock directory is named after the lock *and the inventory host* (``/tmp/runbook-locks/NAME@HOST.lock``):
several inventory aliases of one machine in the same batch each take their own lock."""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runbook.actions.commands import Command
from runbook.execute.leftovers import owner_meta, run_is_dead
from runbook.execute.transports.base import Transport

LOCK_ROOT = "/tmp/runbook-locks"


@dataclass
class LockResult:
    acquired: bool
    message: str = ""
    broke_stale: bool = False
    broken: dict[str, Any] | None = None  # the stale lock's details (its run, pid, why it was stale)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def lock_dir(name: str, host: str) -> str:
    """The lock directory of lock ``name`` for inventory host ``host``."""
    return f"{LOCK_ROOT}/{_safe(name)}@{_safe(host)}.lock"


def acquire(
    transport: Transport,
    name: str,
    run_id: str,
    host: str,
    ttl: float = 4 * 3600,
    owner: Mapping[str, Any] | None = None,
) -> LockResult:
    """Take the lock. ``owner`` (default: this process, ``owner_meta()``) is the process whose death
    makes the lock stale: under Ansible, the ansible-playbook process, not a short-lived worker."""
    d = lock_dir(name, host)
    details = json.dumps(
        {
            "run_id": run_id,
            "user": os.environ.get("USER") or str(os.getuid()),
            **(owner or owner_meta()),  # pid + control_host: a later run can tell whether the holder died
            "since": time.time(),
        }
    )
    script = f"mkdir -p {LOCK_ROOT} && mkdir {shlex.quote(d)} 2>/dev/null && printf %s {shlex.quote(details)} > {shlex.quote(d)}/details.json"
    res = transport.run(Command.shell(script))
    if res.ok:
        return LockResult(True)
    raw = transport.read_file(f"{d}/details.json")
    try:
        info = json.loads(raw or b"{}")
    except ValueError:
        info = {}
    why = ""
    since = float(info.get("since", 0) or 0)
    if since and time.time() - since > ttl:
        why = f"held for more than its TTL of {ttl:.0f} s"
    if run_is_dead(info):
        why = f"its process {info.get('pid')} on {info.get('control_host')} is gone"
    if not info and not raw:
        # half-created lock (crash between mkdir and write): stale if the directory is old
        age = transport.run(Command.shell(f"echo $(( $(date +%s) - $(stat -c %Y {shlex.quote(d)}) ))"))
        if age.ok and age.stdout.strip().isdigit() and int(age.stdout.strip()) > 60:
            why = "half-created (no details) for more than 60 s"
    if why:
        transport.run(Command.exec(["rm", "-rf", d]))
        again = acquire(transport, name, run_id, host, ttl, owner)
        again.broke_stale = again.acquired
        holder = info.get("run_id", "?")
        again.message = f"broke a stale lock held by run {holder}"
        again.broken = {
            "lock": name, "dir": d, "run_id": holder, "pid": info.get("pid"),
            "control_host": info.get("control_host"), "since": since or None, "why": why,
        }  # fmt: skip
        return again
    who = f"run {info.get('run_id', '?')} by {info.get('user', '?')}@{info.get('control_host', '?')}"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if since else "unknown time"
    return LockResult(False, f"deploy lock '{name}' is held by {who} since {when} ({d})")


def release(transport: Transport, name: str, run_id: str, host: str) -> None:
    d = lock_dir(name, host)
    raw = transport.read_file(f"{d}/details.json")
    try:
        info = json.loads(raw or b"{}")
    except ValueError:
        info = {}
    if info.get("run_id") in (run_id, None):
        transport.run(Command.exec(["rm", "-rf", d]))


def break_dead(transport: Transport, name: str, run_id: str, host: str) -> dict[str, Any] | None:
    """Remove the host's lock when run ``run_id`` holds it and is verifiably dead (it ran on this
    control host and its process is gone); the lock's details, or None (left alone: absent, another
    run's, or a holder that may be alive). What `runbook rollback` of a run that changed nothing does."""
    d = lock_dir(name, host)
    raw = transport.read_file(f"{d}/details.json")
    try:
        info = json.loads(raw or b"{}")
    except ValueError:
        return None
    if not isinstance(info, dict) or info.get("run_id") != run_id or not run_is_dead(info):
        return None
    transport.run(Command.exec(["rm", "-rf", d]))
    since = float(info.get("since", 0) or 0)
    why = f"its process {info.get('pid')} on {info.get('control_host')} is gone"
    return {"lock": name, "dir": d, "run_id": run_id, "pid": info.get("pid"),
            "control_host": info.get("control_host"), "since": since or None, "why": why}  # fmt: skip
