"""`runbook inventory -i X` prints what `ansible-inventory --list -i X` prints, through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.cli.main import cli

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus-inventories"
CASES = (
    sorted(p.name for p in CORPUS_DIR.iterdir() if (p / "expected.json").is_file())
    if CORPUS_DIR.is_dir()
    else []
)


@pytest.mark.parametrize("name", CASES)
def test_cli_inventory_list_equals_ansible(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CORPUS_DIR / name
    monkeypatch.chdir(case)
    arg = (case / "INVENTORY_ARG").read_text().strip()
    res = CliRunner().invoke(cli, ["inventory", "-i", arg])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == json.loads((case / "expected.json").read_text())


def test_cli_inventory_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "hosts"
    bad.write_text("[web]\nweb1 ansible_host='unclosed\n")
    res = CliRunner().invoke(cli, ["inventory", "-i", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}:2" in res.output
    assert "Traceback" not in res.output


def test_cli_inventory_host_prints_merged_vars(tmp_path: Path) -> None:
    inv = tmp_path / "hosts"
    inv.write_text("[web]\nweb1 port=8080\n[web:vars]\ncolor=blue\n")
    res = CliRunner().invoke(cli, ["inventory", "-i", str(inv), "--host", "web1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"color": "blue", "port": 8080}
    assert os.path.exists(inv)
