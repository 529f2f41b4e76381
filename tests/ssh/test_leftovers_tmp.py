"""The persistent shell's private directory (``$TMPDIR/.runbook-<boot>-<pid>-XXXX``) of a shell that
was killed (SIGKILL runs no EXIT trap) is removed by the next shell on that host; a live shell's
directory, another user's and any name that is not ours are left alone."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from runbook.actions.commands import Command

pytestmark = [pytest.mark.slow, pytest.mark.ssh]


def _boot() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip().split("-")[0]


def _gone(pid: int) -> None:
    for _ in range(200):
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.02)
    raise AssertionError(f"{pid} still running")


@pytest.mark.timeout(60)
def test_a_killed_shells_directory_is_removed_on_the_next_connection(connect, tmp_path):
    dead = connect()
    d_dead = Path(dead._shell.facts.tmpdir)
    assert d_dead.name.startswith(f".runbook-{_boot()}-")
    pid = int(d_dead.name.split("-")[2])
    os.kill(pid, signal.SIGKILL)
    _gone(pid)
    assert d_dead.is_dir()  # a leftover: nobody ran the EXIT trap
    live = connect()
    d_live = Path(live._shell.facts.tmpdir)
    tmp = d_live.parent
    other_boot = tmp / f".runbook-00000001-{os.getpid()}-abcdef"  # a previous boot's: any pid is stale
    same_boot_alive = tmp / f".runbook-{_boot()}-{os.getpid()}-abcdef"  # its pid runs: kept
    not_ours = tmp / ".runbook-lock-123-x"  # not a shell's name: never touched
    releases = tmp / ".runbook-releases"
    for d in (other_boot, same_boot_alive, not_ours, releases):
        d.mkdir(exist_ok=True)
    try:
        assert not d_dead.exists()  # removed by `live`, the next shell
        assert connect()._shell.facts  # its hello (which removes the leftovers) has been answered
        assert not other_boot.exists()
        assert same_boot_alive.is_dir() and not_ours.is_dir() and releases.is_dir() and d_live.is_dir()
        assert live.run(Command.shell("true")).rc == 0
    finally:
        for d in (same_boot_alive, not_ours, releases):
            d.rmdir()
