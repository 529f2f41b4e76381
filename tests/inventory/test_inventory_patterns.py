"""Host pattern selection (`Inventory.select`) against `ansible PATTERN -i X --list-hosts`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runbook.errors import InventoryError
from runbook.model.inventory import load_inventory

CASES_DIR = Path(__file__).resolve().parent / "cases"

# (case, pattern). Groups nested under two or more parents at the same level are avoided where
# Ansible's own order is not deterministic (it walks a set of groups).
PATTERNS = [
    ("ini-ranges", "all"),
    ("ini-ranges", "web[0]"),
    ("ini-ranges", "web[-1]"),
    ("ini-ranges", "web[2:4]"),
    ("ini-ranges", "web[18:]"),
    ("ini-ranges", "web1?.example.com"),
    ("ini-ranges", "~^s[0-9]+$"),
    ("ini-ranges", "alpha:stepped"),
    ("ini-ranges", "alpha,node-[a-c],10.0.0.2"),
    ("ini-ranges", "*:&ports:!~.*example.*"),
    ("ini-ranges", "!web"),
    ("ini-ranges", "localhost"),
    ("ini-ranges", "nomatch"),
    ("same-name", "assethost"),
    ("same-name", "db:&web"),
    ("same-name", "asset*"),
    ("ini-pending-children", "top:!leaf"),
    ("ini-nested", "europe:&americas"),
    ("ini-nested", "europe:!germany,usa"),
    ("yaml-variants", "web*:ungrouped"),
]


def _parse_list_hosts(stdout: str) -> list[str]:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    assert lines and lines[0].startswith("hosts ("), stdout
    return lines[1:]


@pytest.fixture(scope="module")
def oracle_hosts(oracle):
    futures = {}
    for case, pattern in PATTERNS:
        cwd = CASES_DIR / case
        arg = (cwd / "ARG").read_text().split()[0]
        futures[case, pattern] = oracle.submit(["ansible", pattern, "-i", arg, "--list-hosts"], cwd)
    return futures


@pytest.mark.parametrize(("case", "pattern"), PATTERNS)
def test_select_matches_ansible(case, pattern, oracle_hosts, in_dir):
    proc = oracle_hosts[case, pattern].result()
    assert proc.returncode == 0, proc.stderr
    expected = _parse_list_hosts(proc.stdout)
    in_dir(CASES_DIR / case)
    inv = load_inventory((CASES_DIR / case / "ARG").read_text().split()[0])
    assert inv.select(pattern) == expected


_MANAGER_SCRIPT = """
import sys
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
try:
    print(InventoryManager(DataLoader(), [sys.argv[1]]).list_hosts(sys.argv[2]))
except Exception as exc:
    print("ERROR", exc)
"""


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("a[5]", "No hosts matched the subscripted pattern"), ("~(", "Invalid host list pattern")],
)
def test_bad_patterns_fail_like_ansible(pattern, message, oracle, in_dir):
    # The `ansible` CLI turns these into "no hosts"; its InventoryManager (used by playbooks) raises.
    cwd = CASES_DIR / "ini-priority"
    proc = oracle.submit([sys.executable, "-c", _MANAGER_SCRIPT, "hosts", pattern], cwd).result()
    assert proc.stdout.startswith("ERROR") and message in proc.stdout, proc.stdout + proc.stderr
    in_dir(cwd)
    with pytest.raises(InventoryError, match=message):
        load_inventory("hosts").select(pattern)


def test_select_pure_python_semantics(in_dir):
    in_dir(CASES_DIR / "ini-priority")
    inv = load_inventory("hosts")
    assert inv.select("a") == ["h1", "h2"]
    assert inv.select("a:&c") == ["h1"]
    assert inv.select("a:!c") == ["h2"]
    assert inv.select("zz") == ["h1", "h2"]
    assert inv.select("A") == []  # case sensitive, unknown -> empty
    assert inv.select("h*") == ["h1", "h2"]
    assert inv.select("a[0:0]") == ["h1"]
    assert inv.select("a[1:5]") == ["h2"]
    assert inv.select("~[") == ["h1", "h2"]  # split as '~' (unbalanced bracket): matches everything
