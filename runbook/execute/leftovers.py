"""Commands a dead run left running on a host.

Every command a step (or an undo) starts carries ``RUNBOOK_RUN_ID=<run id>`` in its environment,
and so does everything it starts in turn. A runbook process that is SIGKILLed (or whose machine
dies) cannot stop what it had started: a ``docker compose up`` or a migration keeps going in its own
process group. Before `runbook rollback` undoes such a run, or `--resume` carries it on, the host is
searched for processes tagged with that run's id (``/proc/*/environ``, the same user's only), which
get SIGTERM, then SIGKILL after a grace period, so the undo does not race them.

This is done only when the run is known to be dead: it ran on this control machine and its PID is
gone. A run still alive elsewhere is never touched (the deploy lock refuses the rollback then).
"""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from runbook.execute.transports.base import Transport
from runbook.plan.commands import Command

ENV = "RUNBOOK_RUN_ID"


def owner_meta() -> dict[str, Any]:
    """What the run state records so a later rollback can tell whether this run is dead."""
    return {"pid": os.getpid(), "control_host": socket.gethostname()}


def run_is_dead(meta: Mapping[str, Any]) -> bool:
    """True only when the run ran here and its process is gone (unknown means alive)."""
    pid = meta.get("pid")
    if meta.get("control_host") != socket.gethostname() or not isinstance(pid, int) or pid <= 1:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def reap_script(run_ids: Iterable[str], grace: float) -> str:
    """sh text: print the PIDs tagged with one of ``run_ids``, TERM them, KILL what is left after
    ``grace`` seconds. GNU grep's -z (NUL-separated environ entries) with -x: exact values only, so
    ``ID-rollback`` never matches ``ID``."""
    pats = " ".join(f"-e {shlex.quote(f'{ENV}={r}')}" for r in run_ids)
    ticks = max(1, int(grace * 10))
    return (
        f"pids=$(grep -lzx {pats} /proc/[0-9]*/environ 2>/dev/null"
        ' | sed -n \'s,^/proc/\\([0-9][0-9]*\\)/environ$,\\1,p\' | grep -vx -e "$$" -e "$PPID")\n'
        '[ -n "$pids" ] || exit 0\n'
        "echo $pids\n"
        "kill -TERM $pids 2>/dev/null\n"
        f"i=0; while [ $i -lt {ticks} ]; do\n"
        "  alive=; for p in $pids; do kill -0 $p 2>/dev/null && alive=1; done\n"
        '  [ -z "$alive" ] && exit 0\n'
        "  sleep 0.1; i=$((i+1))\n"
        "done\n"
        "kill -KILL $pids 2>/dev/null; exit 0\n"
    )


def stop_leftovers(transport: Transport, run_ids: Iterable[str], grace: float = 10.0) -> list[int]:
    """Stop what runs ``run_ids`` left running on the host; the PIDs found (none: nothing was)."""
    res = transport.run(Command.shell(reap_script(run_ids, grace)), timeout=grace + 30)
    if not res.ok:
        return []
    return [int(p) for p in res.stdout.split() if p.isdigit()]
