"""More inventories compared with ansible-core 2.19 itself: hundreds of generated ones and odd hand-written ones.

* generated (fixed seeds, `invgen`): YAML trees several levels deep with hosts in several groups and
  conflicting vars, typed and ``!unsafe`` values, ranges in keys; INI files with ``:vars`` before
  their group, ``:children`` of later groups, ports, IPv6, comments, Python literals; directories
  mixing INI, YAML and ignored files, with group_vars/ and host_vars/ files and directories;
* hand-written (`oracle_cases`): one oddity each, including malformed inventories.

For each, runbook's `--list` must equal Ansible's, so must each host's `--host` variables, every host
pattern and ``--limit`` (incl. ``@file``) must select what `ansible PATTERN --list-hosts` selects, and
an inventory Ansible refuses must be refused with file, line and a hint. Ansible runs in one process
for all cases (`oracle_batch.py`), twice with different string hashing, because Ansible's own host
order is not fixed for some group shapes (see `oracle_compare.ambiguous_groups`).
"""

from __future__ import annotations

import json
import os
import random
from concurrent.futures import ThreadPoolExecutor

import invgen
import oracle_cases
import pytest
from click.testing import CliRunner
from oracle_compare import divergence, ours, run_oracle

from runbook.cli.main import cli
from runbook.errors import InventoryError
from runbook.model.inventory import load_inventory

GENERATED = {
    "yaml": (invgen.yaml_inventory, 60, 11),
    "ini": (invgen.ini_inventory, 60, 12),
    "dir": (invgen.dir_inventory, 40, 13),
}
HAND = {**oracle_cases.INI, **oracle_cases.YAML, **oracle_cases.DIRS}
# Ansible warns and goes on with an empty inventory unless told to fail on unparsed sources; so do we.
WARN_ONLY = {"empty-dir", "dir-only-ignored"}

PATTERNS = [
    "all",
    "ungrouped",
    "web",
    "web:&db",
    "web:!db",
    "!web",
    "web,db",
    " web , db ",
    "web:db",
    "~^h[0-9]",
    "~(web|db)",
    "web[0]",
    "web[-1]",
    "web[1:3]",
    "web[1:]",
    "web[0:]",
    "web[10]",
    "web[-100]",
    "all[0]",
    "all[-1]",
    "*",
    "h*",
    "h?",
    "*.example.com",
    "10.*",
    "db[a:c]",
    "web0[1-3]",
    "node-*",
    "fe80::1",
    "h2:2222",
    "[2001:db8::9]:2200",
    "localhost",
    "127.0.0.1",
    "nope",
    "web:nope",
    "WEB",
    "prod:&eu:!h1",
    "db*:&*a*",
    "all:!ungrouped",
    "!web:!db",
    "*[0]",
    "~(",
    "ungrouped[0]",
    "127.0.0.1,localhost",
    "localhost:!localhost",
    "::1",
    "web[0]:&db[0]",
    "~web[0]",
    "web,",
    "web db",
    "*:!*",
    "[a-z]*",
    "node[1:7:3]",
    "",
]
HOST_VARS = ["h1", "h2", "h3", "web01", "localhost", "10.0.0.5", "x_y", "dba", "UPPER", "fe80::1", "node-a"]
LIMITS = ["web", "@limit.txt", "@limit.txt,h2", "web:!db", "web[0]", "!web", "h*,db", "@missing.txt"]
LIMIT_FILE = "web\n  h1  \n\ndb:&prod\n~^1\n"
EMPTY_LIST = {"_meta": {"hostvars": {}, "profile": "inventory_legacy"}, "all": {"children": ["ungrouped"]}}


def _case_ids() -> list[str]:
    ids = [f"{kind}-{i:02d}" for kind, (_g, count, _s) in GENERATED.items() for i in range(count)]
    return ids + [f"hand-{name}" for name in HAND]


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> dict[str, tuple[dict, dict, dict]]:
    """Write every case, run Ansible on all of them (two hash seeds, in parallel): {id: (job, r0, r1)}."""
    root = tmp_path_factory.mktemp("oracle-more")
    jobs: dict[str, dict] = {}
    for kind, (generate, count, seed) in GENERATED.items():
        rng = random.Random(seed)
        for i in range(count):
            directory = root / f"{kind}-{i:02d}"
            directory.mkdir()
            sources = generate(rng, directory)
            (directory / "limit.txt").write_text(LIMIT_FILE)
            jobs[directory.name] = {
                "cwd": str(directory),
                "sources": sources,
                "patterns": PATTERNS,
                "limits": LIMITS,
                "host_vars": HOST_VARS,
            }
    for name, (files, sources) in HAND.items():
        directory = root / f"hand-{name}"
        directory.mkdir()
        oracle_cases.write_case(directory, files)
        jobs[directory.name] = {
            "cwd": str(directory),
            "sources": sources,
            "patterns": ["all", "web", "g"],
            "host_vars": ["h", "h1", "w1", "deep", "localhost"],
        }
    names = list(jobs)
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda seed: run_oracle([jobs[n] for n in names], seed), ["0", "1"])
    return {n: (jobs[n], a, b) for n, a, b in zip(names, first, second, strict=True)}


def test_enough_cases_parse(compared):
    """The generators must mostly produce inventories Ansible accepts, else the comparison is hollow."""
    for kind in GENERATED:
        results = [r0 for name, (_job, r0, _r1) in compared.items() if name.startswith(kind + "-")]
        accepted = sum(r["rc"] == 0 for r in results)
        assert accepted >= len(results) * 0.4, f"{kind}: only {accepted}/{len(results)} accepted by Ansible"
        assert accepted < len(results), f"{kind}: no malformed inventory generated"


@pytest.mark.parametrize("case", _case_ids())
def test_matches_ansible(case, compared):
    job, theirs, theirs_other = compared[case]
    if case.removeprefix("hand-") in WARN_ONLY:
        assert theirs["rc"] != 0 and "Completely failed to parse" in theirs["error"]
        inv = _load(job)
        assert inv.to_ansible_list() == EMPTY_LIST
        assert any("Unable to parse" in w for w in inv.warnings)
        return
    mine = ours(job)
    problem = divergence(mine, theirs, theirs_other)
    assert problem is None, f"{case} ({job['cwd']}, -i {' -i '.join(job['sources'])}): {problem}"
    if "error" in mine:  # refused by both: say where and what to do
        err = mine["error"]
        assert err.location is not None and err.location.file, str(err)
        assert err.hint, str(err)
        whole_file = ("Parsed empty YAML file", "does not exist", "TOML", "Dynamic")
        if not any(w in err.message for w in whole_file):
            assert err.location.line is not None, str(err)


def _load(job: dict):
    old = os.getcwd()
    os.chdir(job["cwd"])
    try:
        return load_inventory(job["sources"])
    finally:
        os.chdir(old)


@pytest.mark.parametrize("name", sorted(HAND))
def test_cli_prints_what_ansible_prints(name, compared, monkeypatch):
    """`runbook inventory` output is byte for byte ansible-inventory's; a refused inventory gives exit
    code 2 and `error: FILE:LINE: ...` with a hint, never a traceback."""
    job, theirs, _ = compared[f"hand-{name}"]
    monkeypatch.chdir(job["cwd"])
    argv = ["inventory"] + [a for s in job["sources"] for a in ("-i", s)]
    result = CliRunner().invoke(cli, argv)
    assert "Traceback" not in result.output
    if theirs["rc"] == 0 or name in WARN_ONLY:
        assert result.exit_code == 0, result.output
        expected = (
            theirs["stdout"] if theirs["rc"] == 0 else json.dumps(EMPTY_LIST, indent=4, sort_keys=True) + "\n"
        )
        assert result.stdout == expected
    else:
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and "hint: " in result.output, result.output


def test_limit_file_lines_are_patterns(tmp_path, in_dir):
    (tmp_path / "hosts").write_text("[web]\nw1\nw2\n[db]\nd1\nw2\n")
    (tmp_path / "limit").write_text("d1\nweb:&db\n\n")
    in_dir(tmp_path)
    inv = load_inventory("hosts")
    assert inv.select("@limit") == ["d1"]  # 'web:&db' is one pattern on a line of its own: no match
    assert inv.select("@limit,w1") == ["d1", "w1"]
    with pytest.raises(InventoryError, match="Unable to find limit file nope") as info:
        inv.select("@nope")
    assert info.value.hint


def test_cli_host_prints_what_ansible_prints(compared, monkeypatch):
    job, theirs, _ = compared["hand-unsafe-and-types"]
    monkeypatch.chdir(job["cwd"])
    result = CliRunner().invoke(cli, ["inventory", "-i", job["sources"][0], "--host", "h"])
    assert result.exit_code == 0, result.output
    assert result.stdout == theirs["hosts"]["--host h"] + "\n"
