"""The Molecule scenario molecule/deploy-4gb passes: create starts the suite's dockerd, PostgreSQL,
Redis and an sshd host (tests/fixtures/stack.py); prepare runs ansible/prepare-debian-host.yml; the
compiled deploy-4gb converges over SSH through the collection in place, a second converge changes
nothing (the backup and the always: steps are exempt, tagged by the compiler), verify checks the end
state, and destroy stops every process it started, by PID."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.fixtures import stack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


# ~2 min on an idle machine, several times that on a loaded one: the scenario's own bound (below) comes
# first, and leaves the test time to stop what a half-run scenario started
@pytest.mark.timeout(1500)
def test_molecule_deploy_4gb_converges_idempotent_and_verifies() -> None:
    if shutil.which("molecule") is None:
        pytest.skip("molecule not installed (pip install -e '.[dev]')")
    if os.geteuid() != 0:
        pytest.skip("the scenario starts a dockerd: root only")
    # Not pytest's tmp_path: on a machine where other pytest sessions run, /tmp/pytest-of-<user>
    # keeps only the newest few session directories, and this run lasts minutes (its ssh key,
    # known_hosts and state file would vanish under it).
    work = Path(tempfile.mkdtemp(prefix="rbmol-", dir="/tmp"))
    try:
        _run_scenario(work)
    finally:
        # a scenario stopped half-way (by its bound or the test's) never ran destroy: stop what its
        # create started, by the PIDs its stack file records, before their directory goes
        for state in (work / "ansible-home" / "tmp").glob("molecule.*deploy-4gb/stack/stack.json"):
            stack.stop(state.parent)
        shutil.rmtree(work, ignore_errors=True)


def _run_scenario(work: Path) -> None:
    scratch = work / "target"
    home = work / "ansible-home"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RUNBOOK_MOLECULE_ROOT": str(scratch),
        "MOLECULE_NO_COLOR": "1",
        "NO_COLOR": "1",
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "XDG_STATE_HOME": str(work / "state"),
    }
    env.pop("DOCKER_HOST", None)  # the scenario's own engine, not a session fixture's
    try:
        res = subprocess.run(
            ["molecule", "test", "-s", "deploy-4gb"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream: molecule's log lines (stderr) mark the playbooks' output
            text=True,
            timeout=1200,
        )
    except subprocess.TimeoutExpired as exc:  # where it was when the bound came: the log's tail
        tail = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"molecule test did not finish in {exc.timeout:.0f} s:\n{tail[-6000:]}")
    out = res.stdout
    assert res.returncode == 0, out[-6000:]
    for action in ("dependency", "create", "prepare", "converge", "idempotence", "verify", "destroy"):
        assert f"deploy-4gb > {action}: Executed: Successful" in out, action
    # the second converge changed nothing (the backup and the always: steps left out by their tag)
    second = out.split("[deploy-4gb > idempotence] Executing", 1)[1].split("idempotence] Executed", 1)[0]
    assert re.search(r"app1\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", second), second[-3000:]
    assert "TASK [Back up the database]" not in second and "TASK [Deploy the stack]" in second
    assert not scratch.exists()  # destroyed: the app directory gone
    states = list((home / "tmp").glob("molecule.*deploy-4gb/stack/stack.json"))
    assert states == []  # and the stack stopped (stop removes its state file last)
