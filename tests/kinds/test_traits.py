"""Step kinds carry their traits, and are found through the runbook.steps entry points: the engine,
attempts and validator ask the kind (a kind of any name with the trait behaves the same), a family
is imported only when used, and a package's entry point that is broken or redefines a kind says so."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import pytest

from runbook import kinds as discovery
from runbook.errors import ValidationError
from runbook.kinds import base as kinds
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind
from tests.core.conftest import Project

REPO = Path(__file__).resolve().parents[2]


def test_the_traits_of_the_built_in_kinds() -> None:
    reg = kinds.registry()
    assert {n for n, c in reg.items() if c.pure} == {"set_fact", "debug", "assert", "fail", "approve"}
    assert {n for n, c in reg.items() if c.asks_approval} == {"approve"}
    assert {n for n, c in reg.items() if c.raw_shell} == {"shell", "command"}
    assert kinds.get("set_fact").defines({"a": 1, "b": 2}) == ("a", "b")
    assert kinds.get("shell").defines({"cmd": "x"}) == ()
    assert not any(c.pure and c.mutating for c in reg.values())


def test_no_module_name_is_tested_outside_the_kinds() -> None:
    """The engine, attempts, validator and planner ask the kind; they never compare a step's module
    with a name (`step.module == "approve"`, `in ("shell", "command")`)."""
    names = "|".join(re.escape(n) for n in kinds.registry())
    test = re.compile(rf"module\s*(==|!=|in|not in)\s*[\(\[{{]?\s*[\"']({names})[\"']")
    bad = []
    for path in (REPO / "runbook").rglob("*.py"):
        if "kinds" in path.relative_to(REPO / "runbook").parts[:1]:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if test.search(line):
                bad.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_every_built_in_family_is_an_entry_point_and_every_kind_is_reachable() -> None:
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["runbook.steps"]
    assert {n: f.value for n, f in discovery.builtin_families().items()} == table  # runbook.kinds.BUILTIN
    modules = {path.stem for path in (REPO / "runbook" / "kinds").glob("*.py")}
    for name, cls in kinds.registry().items():
        fam = discovery.family_of(name)
        assert fam is not None and fam.builtin, name
        assert fam.value == cls.__module__, (name, fam)  # its name finds the module defining it
        assert fam.value.rsplit(".", 1)[1] in modules


def test_a_family_is_imported_only_when_a_step_uses_it() -> None:
    code = (
        "import sys\n"
        "from runbook.kinds import base\n"
        "assert base.get('compose.up') is not None and base.get('shell') is not None\n"
        "print(sorted(m for m in sys.modules if m.startswith('runbook.kinds.')))\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}).stdout.splitlines()  # fmt: skip
    assert out[0] == str(["runbook.kinds.base", "runbook.kinds.compose", "runbook.kinds.compose_release", "runbook.kinds.shell"])
    assert out[1] == "False"  # built-in names need no scan of the installed packages' metadata


class _Gate(StepKind):
    """A kind under a name of its own with runbook's traits: it behaves as approve/set_fact do."""

    name = "acme.gate"
    pure = True
    asks_approval = True
    schema: ClassVar[dict[str, Any]] = {
        "type": "object", "properties": {"prompt": {"type": "string"}}, "additionalProperties": False,
    }  # fmt: skip

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        raise AssertionError("the engine's approval decides: run() is not called")
        yield


class _Remember(StepKind):
    name = "acme.remember"
    pure = True
    schema: ClassVar[dict[str, Any]] = {"type": "object", "minProperties": 1}

    def defines(self, args: Any) -> tuple[str, ...]:
        return tuple(args) if isinstance(args, dict) else ()

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        return Outcome.success("", data={"ansible_facts": dict(args)})
        yield


@pytest.fixture
def plugin_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in (_Gate, _Remember):
        monkeypatch.setitem(kinds._REGISTRY, cls.name, cls)


def test_the_engine_asks_the_traits_not_the_names(project: Project, plugin_kinds: None) -> None:
    project.inventory()
    project.runbook("gate", """
        hosts: localhost
        steps:
          - name: remember
            acme.remember: {colour: blue}
          - name: gate
            acme.gate: {prompt: "go?"}
          - name: use
            debug: {msg: "{{ colour }}"}
    """)  # fmt: skip
    assert project.cli("validate", "gate", "-i", str(project.root / "inv")).exit_code == 0  # colour is defined
    res, doc = project.exec_json("gate", "--yes")
    assert res.exit_code == 0, res.output
    steps = project.steps(doc)
    assert steps["gate"]["msg"].startswith("approved by") and steps["use"]["msg"] == "blue"
    refused, doc = project.exec_json("gate")  # no terminal, no --yes: the gate says no, as approve does
    project.runbook("approve", (project.root / "playbooks" / "gate.yml").read_text().replace("acme.gate", "approve"))
    builtin, doc2 = project.exec_json("approve")
    assert refused.exit_code == builtin.exit_code == 3, refused.output
    assert project.steps(doc)["gate"]["msg"] == project.steps(doc2)["gate"]["msg"]
    assert "not approved" in project.steps(doc)["gate"]["msg"]
    plan = project.plan("gate", "--output", "json")  # a dry-run runs pure kinds for real
    assert plan.exit_code == 0, plan.output
    steps = {s["name"]: s for s in json.loads(plan.stdout)["hosts"]["localhost"]["steps"]}
    assert steps["gate"]["msg"] == "would ask for approval: go?" and steps["use"]["msg"] == "blue"


def test_a_kind_defined_twice_names_both() -> None:
    class Shell2(StepKind):
        name = "shell"

    with pytest.raises(ValidationError, match=r"step kind 'shell' is defined twice: by runbook\.kinds\.shell\.Shell and by"):
        kinds.register(Shell2)
    assert kinds.get("shell").__class__.__module__ == "runbook.kinds.shell"


def test_a_broken_plugin_is_reported_when_used_and_left_out_of_listings(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = discovery.Family("zzz", "no_such_package_zzz.steps", "zzz-runbook")
    table = {**discovery.families(), "zzz": broken}
    monkeypatch.setattr(discovery, "families", lambda: table)
    with pytest.raises(ValidationError, match=r"the step kinds 'zzz' of zzz-runbook cannot be loaded .*ModuleNotFoundError"):
        discovery.load_for("zzz.thing")
    monkeypatch.setattr(discovery, "_all_loaded", False)
    with pytest.warns(UserWarning, match="zzz-runbook"):
        discovery.load_all()
    assert "shell" in kinds.registry()


def test_an_entry_point_may_name_one_class() -> None:
    fam = discovery.Family("acme.one", "tests.kinds.test_traits:_Remember", "acme")
    try:
        fam.load()
        assert kinds._REGISTRY["acme.remember"] is _Remember
    finally:
        kinds._REGISTRY.pop("acme.remember", None)


def test_a_plugin_operation_missing_its_library_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    import threading

    from runbook.actions import Client, Operation
    from runbook.errors import MissingExtra
    from runbook.execute import clients

    monkeypatch.setitem(sys.modules, "acme_sdk", None)  # what `import` meets when it is not installed
    op = Operation("acme.deploy", "acme_runbook.client:deploy", library="acme_sdk", install="acme-runbook[sdk]")
    with pytest.raises(MissingExtra, match=r"the acme client needs the Python package acme_sdk.*pip install 'acme-runbook\[sdk\]'"):
        clients.call(Client(op, {}), None, contextlib.ExitStack(), threading.Event())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="client operation 'no_such_mod_x:f' cannot be loaded"):
        clients.call(Client(Operation("x.f", "no_such_mod_x:f"), {}), None, contextlib.ExitStack(), threading.Event())  # type: ignore[arg-type]
