"""The id of one ansible-playbook run, the same in every task of it (runbook's ``run.id``).

``runbook_run_id`` (a variable, e.g. ``-e runbook_run_id=...`` as ``runbook exec --engine ansible``
passes it), else ``$RUNBOOK_RUN_ID``, else one derived from the ansible-playbook process: its start
time and PID (tasks run in worker processes forked from it; a callback runs in it), so every task,
lookup and the audit callback of one run agree, and two runs never do (releases, backups and locks
are named after it)."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Mapping
from typing import Any


def playbook_pid() -> int:
    """The ansible-playbook process: this one, or the parent of a worker."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getpid()


def _started(pid: int) -> float:
    """When process ``pid`` started (seconds since the epoch), from /proc; now if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def derived_run_id(pid: int | None = None) -> str:
    pid = playbook_pid() if pid is None else pid
    started = _started(pid)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    return f"{stamp}-ansible{pid}-{int(started * 100) % 10000:04d}"


def run_id(variables: Mapping[str, Any] | None = None) -> str:
    given = (variables or {}).get("runbook_run_id") or os.environ.get("RUNBOOK_RUN_ID")
    return str(given) if given else derived_run_id()
