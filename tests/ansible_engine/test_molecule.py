"""The Molecule scenario (molecule/default) passes: `runbook compile` of its runbook converges on
localhost through the collection in place, is idempotent, and verifies."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_molecule_scenario_converges_idempotent_and_verifies(tmp_path: Path) -> None:
    if shutil.which("molecule") is None:
        pytest.skip("molecule not installed (pip install -e '.[dev]')")
    scratch = tmp_path / "target"
    env = {
        **os.environ,
        "RUNBOOK_MOLECULE_ROOT": str(scratch),
        "MOLECULE_NO_COLOR": "1",
        "NO_COLOR": "1",
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-home" / "tmp"),
    }
    res = subprocess.run(["molecule", "test"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    for action in ("dependency", "create", "converge", "idempotence", "verify", "destroy"):
        assert f"{action}: Executed: Successful" in out, action
    assert not scratch.exists()  # destroyed
