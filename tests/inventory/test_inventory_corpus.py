"""The 25 real-world inventories of ../shared/corpus-inventories: our --list equals Ansible's expected.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.model.inventory import load_inventory

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus-inventories"  # never copied into the repository


def _corpus_cases() -> list[str]:
    if not CORPUS_DIR.is_dir():
        return ["<corpus missing>"]
    return sorted(p.name for p in CORPUS_DIR.iterdir() if (p / "expected.json").is_file())


def test_corpus_is_complete():
    assert CORPUS_DIR.is_dir(), f"conformance corpus not found at {CORPUS_DIR}"
    assert len(_corpus_cases()) == 25


@pytest.mark.parametrize("name", _corpus_cases())
def test_corpus_inventory_matches_ansible(name: str, in_dir) -> None:
    case = CORPUS_DIR / name
    assert case.is_dir(), f"conformance corpus not found at {CORPUS_DIR}"
    arg = (case / "INVENTORY_ARG").read_text().strip()
    expected = json.loads((case / "expected.json").read_text())
    in_dir(case)
    inventory = load_inventory(arg)
    got = json.loads(json.dumps(inventory.to_ansible_list()))
    assert got == expected


def test_corpus_precedence_demo_api(in_dir) -> None:
    case = CORPUS_DIR / "precedence-everywhere-demo"
    in_dir(case)
    inv = load_inventory((case / "INVENTORY_ARG").read_text().strip())
    assert inv.host_vars("localhost")["everywhere"] == "I am everywhere defined in prod/host_vars/localhost"
    assert inv.group_names("localhost") == ["europe", "france"]
    assert Path(inv.sources[0]).is_absolute()
