"""Guards around a run: maintenance windows, the per-host deploy lock, approvals, secrets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook.execute.lock import LOCK_ROOT, lock_dir
from runbook.execute.window import inside
from runbook.model.runbook import Window
from tests.core.conftest import Project


def closed_window() -> str:
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    return f"window: {{start: '{start:%H:%M}', end: '{end:%H:%M}', tz: UTC}}\n"


def test_outside_the_window_is_refused_unless_forced(project: Project, tmp_path: Path) -> None:
    project.runbook(
        "win", "hosts: localhost\n" + closed_window() + "steps:\n  - shell: 'touch {{ marker }}'\n"
    )
    marker = tmp_path / "ran"
    res = project.exec("win", "-e", f"marker={marker}")
    assert res.exit_code == 3  # refused before any change
    assert "outside the maintenance window" in res.stderr and "--force-window" in res.stderr
    assert not marker.exists()
    assert project.plan("win", "-e", f"marker={marker}").exit_code == 0  # a dry-run may run any time
    res = project.exec("win", "-e", f"marker={marker}", "--force-window")
    assert res.exit_code == 0 and marker.exists()


def test_window_crossing_midnight_belongs_to_the_day_it_started() -> None:
    friday_night = Window("22:00", "02:00", "UTC", ("fri",))
    sat_1am = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)  # a Saturday: still Friday's window
    fri_11pm = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    sun_1am = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)  # Saturday night's window: not allowed
    assert inside(friday_night, sat_1am)[0]
    assert inside(friday_night, fri_11pm)[0]
    assert not inside(friday_night, sun_1am)[0]
    assert not inside(friday_night, datetime(2026, 11, 27, 12, 0, tzinfo=UTC))[0]


def test_unknown_time_zone_is_a_clear_error(project: Project) -> None:
    project.runbook(
        "tz",
        "hosts: localhost\nwindow: {start: '01:00', end: '02:00', tz: Mars/Olympus}\nsteps:\n  - debug: {msg: x}\n",
    )
    res = project.exec("tz")
    assert res.exit_code == 2
    assert "unknown time zone 'Mars/Olympus'" in res.stderr and "Traceback" not in res.output


@pytest.fixture
def lock_name() -> Iterator[str]:
    name = f"core-test-{uuid.uuid4().hex[:8]}"
    yield name
    for d in Path(LOCK_ROOT).glob(f"{name}@*.lock"):
        for f in d.iterdir():
            f.unlink()
        d.rmdir()


def hold_lock(name: str, pid: int, host: str = "localhost") -> Path:
    d = Path(lock_dir(name, host))
    d.mkdir(parents=True)
    details = {"run_id": "other-run", "user": "bob", "control_host": socket.gethostname(), "pid": pid}
    (d / "details.json").write_text(json.dumps({**details, "since": datetime.now(UTC).timestamp()}))
    return d


def test_deploy_lock_is_taken_and_released(project: Project, lock_name: str, tmp_path: Path) -> None:
    project.runbook(
        "lk",
        f"hosts: localhost\nlock: {lock_name}\nsteps:\n  - shell: 'ls {LOCK_ROOT} > {{{{ out }}}}'\n",
    )
    res = project.exec("lk", "-e", f"out={tmp_path / 'seen'}")
    assert res.exit_code == 0, res.output
    assert f"{lock_name}@localhost.lock" in (tmp_path / "seen").read_text()  # held while the steps ran
    assert not Path(lock_dir(lock_name, "localhost")).exists()  # released


def test_lock_true_locks_each_inventory_host(project: Project, lock_name: str, tmp_path: Path) -> None:
    """Two inventory aliases of one machine in the same batch: each takes its own lock, none collides."""
    project.inventory("web-a ansible_connection=local\nweb-b ansible_connection=local\n")
    project.runbook(
        lock_name,
        f"hosts: all\nlock: true\nsteps:\n  - shell: 'ls {LOCK_ROOT} > {{{{ out }}}}-{{{{ inventory_hostname }}}}'\n",
    )
    res = project.exec(lock_name, "-e", f"out={tmp_path / 'seen'}")
    assert res.exit_code == 0, res.output
    for host in ("web-a", "web-b"):
        assert f"{lock_name}@{host}.lock" in (tmp_path / f"seen-{host}").read_text()
        assert not Path(lock_dir(lock_name, host)).exists()


def test_a_held_lock_stops_the_host(project: Project, lock_name: str, tmp_path: Path) -> None:
    d = hold_lock(lock_name, os.getpid())  # a live process holds it
    project.runbook("lk", f"hosts: localhost\nlock: {lock_name}\nsteps:\n  - shell: 'touch {{{{ out }}}}'\n")
    res = project.exec("lk", "-e", f"out={tmp_path / 'ran'}")
    assert res.exit_code == 3  # refused: nothing was changed
    assert f"deploy lock '{lock_name}' is held by run other-run by bob@" in res.stdout
    assert "deploy lock" in res.stdout.split("STEPS")[1]
    assert not (tmp_path / "ran").exists()
    assert d.exists()  # someone else's lock is left alone


def test_a_stale_lock_is_broken(project: Project, lock_name: str, tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    hold_lock(lock_name, gone.pid)
    project.runbook("lk", f"hosts: localhost\nlock: {lock_name}\nsteps:\n  - shell: 'touch {{{{ out }}}}'\n")
    res = project.exec("lk", "-e", f"out={tmp_path / 'ran'}")
    assert res.exit_code == 0, res.output
    assert "broke a stale lock held by run other-run" in res.stdout
    assert (tmp_path / "ran").exists()


APPROVE = """
hosts: localhost
steps:
  - name: Go?
    approve: {prompt: "Deploy to production?"}
  - name: after
    shell: "touch {{ out }}"
"""


def test_approve_needs_yes_when_nobody_can_be_asked(project: Project, tmp_path: Path) -> None:
    project.runbook("ap", APPROVE)
    res = project.exec("ap", "-e", f"out={tmp_path / 'ran'}")
    assert res.exit_code == 3  # refused: nothing was changed
    assert "no terminal to ask and --yes not given" in res.stdout
    assert not (tmp_path / "ran").exists()
    res, doc = project.exec_json("ap", "-e", f"out={tmp_path / 'ran'}", "--yes")
    assert res.exit_code == 0
    assert "(--yes)" in project.steps(doc)["Go?"]["msg"]
    assert (tmp_path / "ran").exists()


def test_secrets_never_reach_the_output(project: Project) -> None:
    project.runbook(
        "sec",
        """
        hosts: localhost
        vars:
          db_password: hunter2secret
          api_token: "{{ plain_value }}"
          plain_value: abcdef123
          dsn: "postgresql://app:dsnpass99@127.0.0.1/db"
        steps:
          - name: leak
            shell: "echo {{ db_password }} {{ api_token }} {{ dsn }} {{ admin_password }}; exit 1"
        """,
    )
    for output in ("text", "json", "junit"):
        res = project.exec("sec", "-e", "admin_password=adminpw77", "--output", output, "-v")
        assert res.exit_code == 1
        for secret in ("hunter2secret", "abcdef123", "dsnpass99", "adminpw77"):
            assert secret not in res.output, (output, secret)
    assert "postgresql://app:***@127.0.0.1/db" in res.output


def test_rollback_takes_the_deploy_lock_too(project: Project, lock_name: str, tmp_path: Path) -> None:
    target = tmp_path / "conf"
    project.runbook(
        "lk",
        f"hosts: localhost\nlock: {lock_name}\nsteps:\n  - copy: {{content: 'v2', dest: '{target}'}}\n",
    )
    target.write_text("v1")
    res, doc = project.exec_json("lk")
    assert res.exit_code == 0 and target.read_text() == "v2", res.output
    d = hold_lock(lock_name, os.getpid())  # another deploy is live on the host
    back = project.cli("rollback", "lk", "--run", doc["run_id"], "--yes")
    assert back.exit_code == 4, back.output
    assert f"deploy lock '{lock_name}' is held by run other-run" in back.output
    assert target.read_text() == "v2" and d.exists()  # nothing undone under the live run
    for f in d.iterdir():
        f.unlink()
    d.rmdir()
    back = project.cli("rollback", "lk", "--run", doc["run_id"], "--yes")
    assert back.exit_code == 0, back.output
    assert target.read_text() == "v1" and not d.exists()  # undone, and the lock released
