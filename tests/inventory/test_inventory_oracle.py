"""Our own awkward inventories (tests/inventory/cases/*), compared with the real `ansible-inventory --list`.

Each case directory holds an ARG file (one -i argument per line) and the inventory data; an optional
VAULT_PASSWORD_FILE names the password file given to both Ansible and runbook.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.model.inventory import load_inventory

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "ARG").is_file())


def _args(case: Path) -> list[str]:
    return [line.strip() for line in (case / "ARG").read_text().splitlines() if line.strip()]


def _password_file(case: Path) -> str | None:
    marker = case / "VAULT_PASSWORD_FILE"
    return marker.read_text().strip() if marker.is_file() else None


@pytest.fixture(scope="module")
def oracle_lists(oracle):
    """Start `ansible-inventory --list` for every case at once; return {case: Future}."""
    futures = {}
    for name in CASES:
        case = CASES_DIR / name
        password = _password_file(case)
        extra = ["--vault-password-file", password] if password else []
        futures[name] = oracle.inventory_list(case, _args(case), extra)
    return futures


def test_there_are_enough_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", CASES)
def test_case_matches_ansible_inventory(name, oracle_lists, in_dir, monkeypatch):
    case = CASES_DIR / name
    proc = oracle_lists[name].result()
    assert proc.returncode == 0, f"ansible-inventory failed on {name}:\n{proc.stderr}"
    expected = json.loads(proc.stdout)

    password = _password_file(case)
    if password:
        monkeypatch.setenv("RUNBOOK_VAULT_PASSWORD_FILE", str(case / password))
    else:
        monkeypatch.delenv("RUNBOOK_VAULT_PASSWORD_FILE", raising=False)
        monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    in_dir(case)
    got = json.loads(json.dumps(load_inventory(_args(case)).to_ansible_list()))
    assert got == expected
