"""Commands a dead run left running on a host — only those of the steps that were in flight.

Every command a step (or an undo) starts carries ``RUNBOOK_RUN_ID=<run id>`` and
``RUNBOOK_STEP=<token>`` in its environment, and so does everything it starts in turn. The token is
one attempt of one step on one host; while it runs, a marker file ``<run state dir>/inflight/<token>``
says so (written before its first command, removed when the attempt ends, whatever the outcome).

A runbook process that is SIGKILLed (or whose machine dies) cannot stop what it had started: a
``docker compose up`` or a migration keeps going in its own process group. Before `runbook rollback`
undoes such a run, or `--resume` carries it on, the markers it left name the attempts that were in
flight; the host is searched for processes tagged with those tokens (``/proc/*/environ``, the same
user's only), which get SIGTERM, then SIGKILL after a grace period, so the undo does not race them.

What a completed step left running on purpose (a service it launched, a ``nohup`` worker) carries a
token whose attempt ended: it is never touched, and a finished run leaves no marker at all. This is
done only when the run is known to be dead: it ran on this control machine and its PID is gone. A
run still alive elsewhere is never touched (the deploy lock refuses the rollback then).
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import shlex
import socket
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runbook.actions.commands import Command
from runbook.execute.transports.base import Transport

ENV = "RUNBOOK_RUN_ID"
STEP_ENV = "RUNBOOK_STEP"


class InFlight:
    """Marker files of the attempts whose commands are running now (``directory``: the run state's
    ``inflight/``). ``None`` as the directory records nothing (a dry-run)."""

    def __init__(self, directory: Path | None):
        self.dir = directory
        self._mine: set[str] = set()  # this process's attempts: never stopped as leftovers
        self._lock = threading.Lock()
        self._made = False
        self._paths: dict[str, Path] = {}  # this process's markers (and those it took over to stop)

    def start(self, host: str, step: str) -> str:
        """A new token for an attempt on ``host``; its marker is on disk before this returns
        (``<token>.<host key>``, holding the step's name: one create, one write)."""
        token = secrets.token_hex(8)
        with self._lock:
            self._mine.add(token)
        if self.dir is None:
            return token
        try:
            if not self._made:
                self.dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the run state's, private
                self.dir.mkdir(exist_ok=True, mode=0o700)
                self._made = True
            path = self.dir / f"{token}.{_host_key(host)}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with self._lock:
                self._paths[token] = path
            try:
                os.write(fd, step.encode("utf-8", "replace")[:200])
            finally:
                os.close(fd)
        except OSError:
            # the state directory is full or read-only: the run already stops on that fault (its
            # always: steps still run); the attempt goes on unmarked rather than not at all
            pass
        return token

    def end(self, token: str) -> None:
        with self._lock:
            self._mine.discard(token)
            path = self._paths.pop(token, None)
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass

    def left(self, host: str) -> dict[str, str]:
        """{token: step} of the attempts on ``host`` that another (dead) process left in flight."""
        if self.dir is None or not self.dir.is_dir():
            return {}
        out: dict[str, str] = {}
        suffix = "." + _host_key(host)
        for path in self.dir.iterdir():
            token = path.name[: -len(suffix)] if path.name.endswith(suffix) else None
            if not token or token in self._mine:
                continue
            try:
                out[token] = path.read_text(errors="replace")
            except OSError:
                continue
        return out

    def forget(self, host: str, tokens: Iterable[str]) -> None:
        """Drop the markers of a dead run's attempts on ``host`` whose processes were stopped."""
        if self.dir is None:
            return
        for token in tokens:
            (self.dir / f"{token}.{_host_key(host)}").unlink(missing_ok=True)

    def env(self, run_id: str, token: str) -> dict[str, str]:
        """The environment every command of the attempt carries."""
        return {ENV: run_id, STEP_ENV: token}


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


@functools.lru_cache(maxsize=4096)  # once per host, not at every attempt
def _host_key(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:16]


def reap_script(tokens: Iterable[str], grace: float) -> str:
    """sh text: print the PIDs tagged with one of the attempt ``tokens``, TERM them, KILL what is
    left after ``grace`` seconds. GNU grep's -z (NUL-separated environ entries) with -x: exact
    values only."""
    pats = " ".join(f"-e {shlex.quote(f'{STEP_ENV}={t}')}" for t in tokens)
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


def stop_leftovers(transport: Transport, tokens: Iterable[str], grace: float = 10.0) -> list[int]:
    """Stop the processes of the in-flight attempts ``tokens`` on the host; the PIDs found."""
    tokens = list(tokens)
    if not tokens:
        return []
    res = transport.run(Command.shell(reap_script(tokens, grace)), timeout=grace + 30)
    if not res.ok:
        return []
    return [int(p) for p in res.stdout.split() if p.isdigit()]
