"""Parity of inventory scripts on the 25 real-world inventories: each one's `ansible-inventory --list`
(its expected.json) served by an executable script -- what AWX hands a job -- read by runbook and by
ansible-inventory itself; both must list the same thing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.model.inventory import load_inventory

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus-inventories"
pytestmark = pytest.mark.slow


def _cases() -> list[str]:
    if not CORPUS_DIR.is_dir():
        return ["<corpus missing>"]
    return sorted(p.name for p in CORPUS_DIR.iterdir() if (p / "expected.json").is_file())


@pytest.mark.parametrize("name", _cases())
def test_corpus_served_by_a_script(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = (CORPUS_DIR / name / "expected.json").read_text()
    script = tmp_path / "awx_inventory.py"
    script.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"print({listing!r} if sys.argv[1] == '--list' else '{{}}')\n"
    )
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    theirs = subprocess.run(
        ["ansible-inventory", "--list", "-i", str(script)], capture_output=True, text=True, check=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"}, cwd=tmp_path,
    )  # fmt: skip
    ours = json.loads(json.dumps(load_inventory(str(script)).to_ansible_list()))
    assert ours == json.loads(theirs.stdout)
