"""Compare runbook's inventory reader with ansible-core on many inventories at once.

`run_oracle(jobs)` runs `oracle_batch.py` (ansible-core in one process) in a clean environment;
`ours(job)` gives runbook's answer in the same shape; `divergence(job, mine, theirs)` says in one line
how they differ (None when they agree).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from runbook.errors import InventoryError
from runbook.model.hostpattern import split_host_pattern
from runbook.model.inventory import INTERNAL_STATIC_VARS, Inventory, load_inventory
from runbook.model.inventory_yaml import to_jsonable

BATCH = Path(__file__).resolve().parent / "oracle_batch.py"


def run_oracle(jobs: list[dict], hashseed: str = "0") -> list[dict]:
    """ansible-inventory --list (and list_hosts for each job's patterns) on every job, in one process."""
    with tempfile.TemporaryDirectory(prefix="runbook-oracle-") as tmp:
        jobs_file, results_file = Path(tmp, "jobs.json"), Path(tmp, "results.json")
        jobs_file.write_text(json.dumps(jobs))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "RUNBOOK_"))}
        env |= {"HOME": tmp, "PYTHONHASHSEED": hashseed}
        proc = subprocess.run(
            [sys.executable, str(BATCH), str(jobs_file), str(results_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(results_file.read_text())


def ours(job: dict) -> dict:
    """runbook's answer: {"list": ..., "hosts": {pattern: [...] | "ERROR ..."}} or {"error": InventoryError}."""
    old = os.getcwd()
    os.chdir(job["cwd"])
    try:
        inv = load_inventory(job["sources"])
        listing = json.loads(json.dumps(inv.to_ansible_list()))
        hosts: dict[str, Any] = {}
        for pattern in job.get("patterns", []):
            try:
                hosts[pattern] = inv.select(pattern)
            except InventoryError as exc:
                hosts[pattern] = f"ERROR {exc.message}"
        for name in job.get("host_vars", []):  # `runbook inventory --host NAME` should print this
            if name in inv.hosts:
                hv = {k: v for k, v in inv.host_vars(name).items() if k not in INTERNAL_STATIC_VARS}
                hosts["--host " + name] = json.dumps(
                    to_jsonable(hv, tag_unsafe=False), indent=4, sort_keys=True, ensure_ascii=False
                )
        for limit in job.get("limits", []):  # what `runbook exec --limit` keeps: the hosts, in their order
            try:
                allowed = set(inv.select(limit))
                hosts["--limit " + limit] = [h for h in inv.select("all") if h in allowed]
            except InventoryError as exc:
                hosts["--limit " + limit] = f"ERROR {exc.message}"
        patterns = [p for p in hosts if not p.startswith("--host ")]
        return {"list": listing, "hosts": hosts, "ambiguous": _loose_patterns(inv, patterns)}
    except InventoryError as exc:
        return {"error": exc}
    finally:
        os.chdir(old)


def divergence(mine: dict, theirs: dict, theirs_other_seed: dict | None = None) -> str | None:
    """One line describing how runbook differs from Ansible for one job, or None."""
    if theirs["rc"] != 0:
        if "error" not in mine:
            return f"ansible fails ({_first_error(theirs)}) but runbook accepts"
        return None
    if "error" in mine:
        return f"ansible accepts but runbook fails: {mine['error']}"
    expected = json.loads(theirs["stdout"])
    if mine["list"] != expected:
        return f"--list differs: {_first_difference(mine['list'], expected)}"
    for pattern, want in theirs["hosts"].items():
        if pattern.startswith("--host "):
            if mine["hosts"].get(pattern, want) != want:  # (absent: Ansible's implicit localhost)
                return f"{pattern}: runbook {mine['hosts'][pattern]} != ansible {want}"
            continue
        got = mine["hosts"][pattern]
        if isinstance(want, str) or isinstance(got, str):
            if isinstance(want, str) != isinstance(got, str):
                return f"pattern {pattern!r}: runbook {got!r}, ansible {want!r}"
            continue
        other = (theirs_other_seed or theirs)["hosts"][pattern]
        if want != other or pattern in mine["ambiguous"]:  # Ansible's order depends on set iteration
            if "[" in pattern and not pattern.startswith("~"):  # a subscript picks hosts by position
                if len(got) != len(want):
                    return f"pattern {pattern!r}: runbook {got}, ansible {want}"
            elif sorted(got) != sorted(want):
                return f"pattern {pattern!r}: runbook {got}, ansible {want}"
        elif got != want:
            return f"pattern {pattern!r}: runbook {got}, ansible {want}"
    return None


def _first_error(result: dict) -> str:
    text = result.get("error") or result.get("stderr") or ""
    return " ".join(text.split())[:300]


def _first_difference(got: Any, want: Any, path: str = "") -> str:
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want)):
            if key not in got:
                return f"{path}/{key}: missing in runbook (ansible {json.dumps(want[key])[:200]})"
            if key not in want:
                return f"{path}/{key}: extra in runbook ({json.dumps(got[key])[:200]})"
            if got[key] != want[key]:
                return _first_difference(got[key], want[key], f"{path}/{key}")
    return f"{path}: runbook {json.dumps(got)[:200]} != ansible {json.dumps(want)[:200]}"


def ambiguous_groups(inv: Inventory) -> set[str]:
    """Groups whose host order Ansible does not fix: `Group.get_hosts()` walks its descendants level by
    level, and a level is a set, so two groups of a level both bringing new children leave the order
    to Python's string hashing."""
    out = set()
    for name in inv.groups:
        seen: set[str] = set()
        level = {name, *inv.groups[name].children}
        while level:
            seen |= level
            bringing = [g for g in level if any(c not in seen for c in inv.groups[g].children)]
            if len(bringing) > 1:
                out.add(name)
                break
            level = {c for g in level for c in inv.groups[g].children} - seen
    return out


def _loose_patterns(inv: Inventory, patterns) -> set[str]:
    """Patterns whose host order may legitimately differ from one Ansible run to the next."""
    ambiguous = ambiguous_groups(inv)
    loose = set()
    for pattern in patterns:
        terms = split_host_pattern(pattern.removeprefix("--limit "))
        if pattern.startswith("--limit ") or all(t.startswith(("!", "&")) for t in terms):
            terms.append("all")  # a limit keeps the order of 'all'; so does a pattern adding no hosts
        for term in terms:
            term = re.sub(r"\[[-0-9:]*\]$", "", term.lstrip("&!"))
            try:
                rx = re.compile(term[1:]) if term.startswith("~") else re.compile(fnmatch.translate(term))
            except re.error:
                continue
            if any(rx.match(g) for g in ambiguous):
                loose.add(pattern)
    return loose
