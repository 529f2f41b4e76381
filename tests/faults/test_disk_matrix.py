"""deploy-4gb with its run state (.runbook/) or its audit directory on a small tmpfs that is full,
nearly full (the space runs out part-way through the run) or read-only, on the session's real
dockerd, PostgreSQL and Redis.

The rule (docs/fault-matrix.md): a snapshot is durable before the change it guards, or the change
does not happen. So whatever the disk does, the run ends with a clear message and its JSON document,
never a traceback, and the host is either exactly where it was (the baseline: nothing changed, or all
of it rolled back) or exactly at the new release with a zero exit; never in between, never "rolled
back" with something left over.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import MATRIX, Outcome, Subject, differences, wait_until
from tests.faults.subjects import Deploy4gb

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres]


class Tmpfs:
    """A tmpfs of ``size`` mounted on ``path`` for the test (root only), unmounted after it."""

    def __init__(self, path: Path, size: str = "1m"):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True)  # fmt: skip
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")

    def fill(self, leave: int = 0) -> None:
        """Take all the space but ``leave`` bytes (rounded to pages by tmpfs)."""
        st = os.statvfs(self.path)
        want = max(0, st.f_bavail * st.f_frsize - leave)
        fd = os.open(self.path / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while want > 0 or not leave:
                n = os.write(fd, b"\0" * min(65536, want or 4096))
                want -= n
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(fd)

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture(scope="module")
def target(dockerd, postgres_server, redis_server, tmp_path_factory) -> Iterator[Deploy4gb]:
    root = tmp_path_factory.mktemp("faultdisk")
    t = Deploy4gb(root, postgres_server, redis_server, "matrix-disk", "matrix-disk ansible_connection=local")
    t.ensure_baseline()
    res = t.subject.deploy()
    assert res.rc == 0, res.message
    t.changed = t.subject.state()  # type: ignore[attr-defined]
    back = t.subject.cli("rollback", "--run", res.run_id)
    assert back.rc == 0, back.message
    yield t
    t.down()


BUG_DISK = (
    "issue 8 item 7 (runfaults): a state or audit directory that is full or read-only ends the run with "
    "exit 70 'internal error: OSError: [Errno 28|30] ...' and no JSON document, instead of a refusal "
    "before any change (exit 3) or a step failure rolled back"
)
XFAIL: dict[str, str] = {}  # every disk case holds (issue 8 item 7 fixed)

CASES = {
    # where, how: (the .runbook state root | the audit directory) x (full | space for a little | read-only)
    "state dir full": ("state", "full"),
    "state dir with 8 KiB free": ("state", 8 * 1024),
    "state dir with 64 KiB free": ("state", 64 * 1024),
    "state dir read-only": ("state", "ro"),
    "audit dir full": ("audit", "full"),
    "audit dir with 8 KiB free": ("audit", 8 * 1024),
    "audit dir read-only": ("audit", "ro"),
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[c])] if c in XFAIL else [])
        for c in CASES
    ],
)
def test_deploy_with_a_disk_that_fails(target: Deploy4gb, case: str, tmp_path: Path) -> None:
    where, how = CASES[case]
    baseline = target.ensure_baseline(fresh_release=True)
    fs = Tmpfs(tmp_path / "fs", size="1m")
    try:
        if where == "state":
            subject: Subject = dataclasses.replace(target.subject, state_root=fs.path)
        else:
            subject = dataclasses.replace(target.subject, audit_dir=fs.path / "audit")
            (fs.path / "audit").mkdir()
        if how == "ro":
            fs.read_only()
        else:
            fs.fill(0 if how == "full" else int(how))
        t0 = time.time()
        res = subject.deploy()
    finally:
        fs.umount()
    found = target.subject.state()
    row = Outcome("deploy-4gb", "local", case, "disk", "automatic", False, res.rc, None)
    problems = []
    if "Traceback" in res.stderr:
        problems.append("a traceback: " + res.stderr[-1500:])
    if res.doc is None or res.rc == 70:
        problems.append(f"exit {res.rc}, no JSON document: {(res.stdout + res.stderr)[-300:].strip()}")
    expected = target.changed if res.rc == 0 else baseline  # type: ignore[attr-defined]
    diff = differences(expected, found)
    if diff:
        was = (
            "exit 0, but the new release is not all there"
            if res.rc == 0
            else f"exit {res.rc}, and the host was left"
        )
        problems.append(f"{was}: " + "; ".join(diff))
    up = wait_until(lambda: target.subject.healthy(expected), limit=60)
    row.seconds_to_healthy = None if up is None else round(time.time() - t0, 2)
    row.restored = not problems
    row.detail = "; ".join(problems)[:600] if problems else f"exit {res.rc}: {res.message[:300]}"
    MATRIX.append(row.row())
    assert not problems, "\n".join(problems)
