"""What a dead run left running: `runbook rollback` stops only the processes of the steps that were in
flight when the run died, never a service a completed step launched on purpose."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.conftest import PYTHON, REPO, Project
from tests.core.test_interrupt import assert_gone, wait_for

SERVICE = """
hosts: localhost
steps:
  - name: Start the service
    shell: "setsid sh -c 'echo $$ > {{ t }}/svc.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &"
    undo: {none: "the service stays: this test is about what rollback stops"}
  - name: Config
    copy: {content: "new\\n", dest: "{{ t }}/app.conf"}
"""

LONG = """
  - name: Long step
    shell: "echo $$ > {{ t }}/long.pid; touch {{ t }}/started; sleep 120 & wait"
    undo: {none: "a wait"}
"""


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "t"
    d.mkdir()
    (d / "app.conf").write_text("old\n")
    yield d
    for name in ("svc.pid", "long.pid"):
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((d / name).read_text()), signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def test_rollback_of_a_finished_run_leaves_the_service_it_launched(project: Project, t: Path) -> None:
    project.runbook("svc", SERVICE)
    res, doc = project.exec_json("svc", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    service = int((t / "svc.pid").read_text())
    assert alive(service)
    res = project.cli("rollback", "svc", "--run", doc["run_id"], "--yes")
    assert res.exit_code == 0, res.output
    assert "stopped" not in res.output
    assert alive(service)  # the run that started it is over, but nothing of it was in flight
    assert (t / "app.conf").read_text() == "old\n"  # the rollback itself did happen
    assert not (project.root / ".runbook" / "runs" / doc["run_id"] / "inflight").exists() or not any(
        (project.root / ".runbook" / "runs" / doc["run_id"] / "inflight").iterdir()
    )


def test_a_killed_runs_in_flight_step_is_stopped_and_its_service_is_not(project: Project, t: Path) -> None:
    project.runbook("svc", SERVICE + LONG)
    env = {**os.environ, "RUNBOOK_AUDIT": "0", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [PYTHON, "-m", "runbook", "exec", "svc", "-i", "inv", "-e", f"t={t}", "--yes"],
        cwd=project.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(t / "started", proc)
    proc.kill()  # SIGKILL: the long step's shell keeps running in its own session
    proc.communicate()
    service, long_step = int((t / "svc.pid").read_text()), int((t / "long.pid").read_text())
    assert alive(service) and alive(long_step)
    run_id = next((project.root / ".runbook" / "runs").iterdir()).name
    res = project.cli("rollback", "svc", "--run", run_id, "--yes")
    assert res.exit_code == 0, res.output
    stopped = re.search(rf"stopped (\d+) process\(es\) run {run_id} left running: ([\d ]+)", res.output)
    assert stopped and str(long_step) in stopped[2].split(), res.output
    assert str(service) not in stopped[2].split()
    assert "(in flight in 'Long step')" in res.output
    assert_gone(long_step)
    assert alive(service)
    assert (t / "app.conf").read_text() == "old\n"
