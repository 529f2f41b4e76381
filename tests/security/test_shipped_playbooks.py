"""The shipped runbooks run no injected value: ``runbook plan`` (which runs their read-only probes for
real, shell ones included) with hostile values in every variable their shell text uses, and the
documented ``-e fail_at=...`` of local-smoke through a real exec. Before issue 9, deploy-4gb's
pre-flight ran ``-e app_port='1; touch F'`` during a plan."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jinja2 import nodes

from runbook.kinds import base as kinds
from runbook.kinds.base import KnownModules
from runbook.kinds.shellvars import expressions, unquoted_shell_vars
from runbook.model.runbook import load_runbook
from runbook.plan import validate as v
from runbook.render.templar import ENV
from tests.security.cases import CANARY, PAYLOADS, TEMPLATE_PAYLOADS, with_canary
from tests.security.conftest import TALLY

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml")) + sorted(
    (REPO / "tests/seeds/playbooks").glob("*.yml")
)
# what a playbook needs besides the local inventory to get past validation (so that plan really runs)
NEEDS = {
    "coolify-deploy": {"coolify_url": "http://127.0.0.1:9", "coolify_token": "t", "coolify_app_uuid": "u"},
    "e02-before-go-live": {"repo_dir": str(REPO)},
}
POLYGLOT = f"-x $(touch {CANARY}) `touch {CANARY}` ';touch {CANARY};' \";touch {CANARY};\"\ntouch {CANARY}\n"
HOSTILE = {
    "polyglot": POLYGLOT,
    "dash-delete": PAYLOADS["dash-delete"],
    "sandbox-escape": TEMPLATE_PAYLOADS["cycler-globals"],
}
TEXTUAL = ("_dir", "_file", "_path", "_name", "_image", "_log", "_project")
# db_name goes into DSNs: a DSN with spaces is issue 9's "bad input" (a psycopg error), not injection
MAGIC = {
    "db_name",
    "run",
    "inventory_hostname",
    "item",
    "hostvars",
    "groups",
    "group_names",
    "ansible_play_batch",
}


def shell_variables(path: Path) -> set[str]:
    """The variables a runbook's shell text uses that may hold text (not those only used as | int)."""
    rb = load_runbook(path, KnownModules())
    names: set[str] = set()
    for step in rb.all_steps():
        kind = kinds.get(step.module)
        args = kind.normalize(step.args) if kind else None
        if not kind or not isinstance(args, dict):
            continue
        for arg in kind.shell_args:
            if isinstance(args.get(arg), str):
                for expr, _, _ in expressions(args[arg]):
                    tree = ENV.parse("{{ " + expr + " }}")
                    names |= {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}
    text = path.read_text()
    # and the paths and names modules put into commands (compose files, projects, backup paths …)
    names |= {n for n in re.findall(r"\{\{\s*([a-z_][a-z0-9_]*)", text) if n.endswith(TEXTUAL)}
    numeric = {n for n in names if re.search(r"\{\{\s*" + n + r"\s*\|\s*int\b", text)}
    numeric |= {n for n, val in rb.vars.items() if isinstance(val, int | float)}
    return names - numeric - MAGIC - v.runtime_names(rb)


@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda p: p.stem)
def test_shipped_playbook_has_no_unquoted_variable_in_shell_text(path: Path) -> None:
    assert unquoted_shell_vars(load_runbook(path, KnownModules())) == []


@pytest.mark.slow
@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda p: p.stem)
def test_plan_of_a_shipped_playbook_runs_no_injected_value(
    path: Path, hostile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    work, canary = tmp_path / "work", tmp_path / "canary" / "PWNED"
    work.mkdir()
    canary.parent.mkdir()
    (work / "keep.txt").write_text("sentinel")
    monkeypatch.chdir(work)
    monkeypatch.setenv("RUNBOOK_PATH", str(REPO / "playbooks"))
    names = shell_variables(path)
    value = with_canary(HOSTILE[hostile], canary)
    extra = {**NEEDS.get(path.stem, {}), **dict.fromkeys(names, value)}
    res = cli("plan", str(path), "-i", str(REPO / "inventories" / "local"), "-e", json.dumps(extra))
    assert not canary.exists(), f"INJECTED during `runbook plan {path.stem}` ({sorted(names)})"
    assert (work / "keep.txt").read_text() == "sentinel" and sorted(p.name for p in work.iterdir()) == [
        "keep.txt"
    ], "plan changed the working directory"
    if hostile != "sandbox-escape":  # the plan really ran (it was not refused before any probe)
        assert res.exit_code in (0, 1, 3), res.output
    TALLY.held("shipped-plan", f"{path.stem}:{len(names)} vars", hostile, "plan")


def test_local_smoke_exec_with_a_hostile_fail_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """The documented failure injection, given a value that tries to be code: only the literal
    word `verify` fails the run; this one is just text, and the run succeeds."""
    from tests.core.conftest import free_port

    canary = tmp_path / "PWNED"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_PATH", str(REPO / "playbooks"))
    extra = {
        "fail_at": with_canary(POLYGLOT, canary),
        "smoke_dir": str(tmp_path / "smoke"),
        "smoke_port": free_port(),
    }
    res = cli("exec", "local-smoke", "-e", json.dumps(extra), "--output", "json")
    assert res.exit_code == 0, res.output
    steps = {s["name"]: s for s in json.loads(res.stdout)["hosts"]["localhost"]["steps"]}
    assert steps["Verify the deployed version"]["outcome"] == "ok"
    assert not canary.exists()
