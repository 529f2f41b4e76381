"""Ctrl-C (SIGINT) and SIGTERM during a long step: the step's processes are killed, what changed is
rolled back when --yes was given (else the run says how to roll back later), exit 130."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.core.conftest import PYTHON, REPO, Project

LONG = """
hosts: localhost
steps:
  - name: Rewrite config
    copy: {content: "new\\n", dest: "{{ t }}/app.conf"}
  - name: Add a file
    copy: {content: "added\\n", dest: "{{ t }}/added.txt"}
  - name: Long step
    shell: "echo $$ > {{ t }}/../long.pid; touch {{ t }}/../started; sleep 60 & wait"
  - name: Never reached
    copy: {content: "never", dest: "{{ t }}/never.txt"}
"""


@pytest.fixture
def target(project: Project, tmp_path: Path) -> Path:
    t = tmp_path / "target"
    t.mkdir()
    (t / "app.conf").write_text("old\n")
    project.runbook("long", LONG)
    return t


def start(project: Project, target: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "RUNBOOK_AUDIT": "0", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [PYTHON, "-m", "runbook", "exec", "long", "-i", "inv", "-e", f"t={target}", *extra],
        cwd=project.root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    for _ in range(400):
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"runbook ended early: {proc.communicate()}")
        time.sleep(0.025)
    proc.kill()
    raise AssertionError(f"{path} never appeared")


def interrupt(proc: subprocess.Popen, sig: int) -> tuple[int, str, str]:
    os.kill(proc.pid, sig)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"runbook did not stop after signal {sig}: {out}\n{err}") from None
    return proc.returncode, out, err


def assert_gone(pid: int) -> None:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} of the interrupted step is still running")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_with_yes_rolls_back_and_exits_130(
    project: Project, target: Path, tmp_path: Path, sig: int
) -> None:
    proc = start(project, target, "--yes", "--output", "json")
    wait_for(tmp_path / "started", proc)
    code, out, err = interrupt(proc, sig)
    assert code == 130, out + err
    assert "Traceback" not in err
    doc = json.loads(out)
    assert doc["status"] == "interrupted"
    assert "rolled back localhost" in doc["message"]
    assert (target / "app.conf").read_text() == "old\n"
    assert not (target / "added.txt").exists()
    assert not (target / "never.txt").exists()
    assert_gone(int((tmp_path / "long.pid").read_text()))


def test_sigint_without_yes_keeps_changes_and_says_how_to_roll_back(
    project: Project, target: Path, tmp_path: Path
) -> None:
    proc = start(project, target)
    wait_for(tmp_path / "started", proc)
    code, out, err = interrupt(proc, signal.SIGINT)
    assert code == 130, out + err
    assert "Traceback" not in out + err
    assert "NOT rolled back: localhost" in out
    assert "runbook rollback long --run " in out
    assert (target / "app.conf").read_text() == "new\n"  # kept: nobody confirmed the rollback
    assert_gone(int((tmp_path / "long.pid").read_text()))
    run_id = out.split("runbook rollback long --run ")[1].split("`")[0].split()[0]
    res = project.cli("rollback", "long", "--run", run_id, "--yes")
    assert res.exit_code == 0, res.output
    assert (target / "app.conf").read_text() == "old\n"
    assert not (target / "added.txt").exists()


def test_sigint_on_several_hosts(project: Project, target: Path, tmp_path: Path) -> None:
    project.inventory("h1 ansible_connection=local\nh2 ansible_connection=local\n")
    project.runbook(
        "long",
        """
        hosts: all
        steps:
          - name: Host file
            copy: {content: "new", dest: "{{ t }}/{{ inventory_hostname }}.txt"}
          - name: Long step
            shell: "touch {{ t }}/../started-{{ inventory_hostname }}; sleep 60 & wait"
        """,
    )
    proc = start(project, target, "--yes")
    wait_for(tmp_path / "started-h1", proc)
    wait_for(tmp_path / "started-h2", proc)
    code, out, err = interrupt(proc, signal.SIGINT)
    assert code == 130, out + err
    assert "Traceback" not in out + err
    assert not (target / "h1.txt").exists() and not (target / "h2.txt").exists()


def test_sigint_stops_every_command_on_a_shared_delegate(
    project: Project, target: Path, tmp_path: Path
) -> None:
    project.inventory("h1 ansible_connection=local\nh2 ansible_connection=local\n")
    project.runbook(
        "long",
        """
        hosts: all
        steps:
          - name: Delegated
            shell: "touch {{ t }}/../started-{{ inventory_hostname }}; sleep 4; touch {{ t }}/done-{{ inventory_hostname }}"
            delegate_to: localhost
        """,
    )
    proc = start(project, target, "--yes")
    wait_for(tmp_path / "started-h1", proc)
    wait_for(tmp_path / "started-h2", proc)
    code, out, err = interrupt(proc, signal.SIGINT)
    assert code == 130, out + err
    assert not (target / "done-h1").exists() and not (target / "done-h2").exists()


def test_rollback_of_a_killed_run_first_stops_what_it_left_running(
    project: Project, target: Path, tmp_path: Path
) -> None:
    proc = start(project, target, "--yes", "--output", "json")
    wait_for(tmp_path / "started", proc)
    proc.kill()  # SIGKILL: no rollback, no cleanup; the step's shell keeps running in its own session
    proc.communicate()
    orphan = int((tmp_path / "long.pid").read_text())
    os.kill(orphan, 0)  # still alive
    run_id = next((project.root / ".runbook" / "runs").iterdir()).name
    res = project.cli("rollback", "long", "--run", run_id, "--yes")
    assert res.exit_code == 0, res.output
    # the step's shell and its `sleep 60`: both carry the killed run's RUNBOOK_RUN_ID
    stopped = re.search(rf"stopped (\d+) process\(es\) run {run_id} left running: ([\d ]+)", res.output)
    assert stopped and str(orphan) in stopped[2].split(), res.output
    assert_gone(orphan)
    assert (target / "app.conf").read_text() == "old\n" and not (target / "added.txt").exists()


def test_a_live_runs_commands_are_never_stopped(project: Project, target: Path, tmp_path: Path) -> None:
    from runbook.execute.leftovers import run_is_dead

    assert not run_is_dead({"pid": os.getpid(), "control_host": os.uname().nodename})
    assert not run_is_dead({"pid": 1, "control_host": os.uname().nodename})
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert run_is_dead({"pid": gone.pid, "control_host": os.uname().nodename})
    assert not run_is_dead({"pid": gone.pid, "control_host": "another-machine"})
