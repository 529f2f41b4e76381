"""The Python API (runbook.run / plan / validate / rollback, docs/api.md): real local runs of runbooks
in a scratch project, with the same outcome the CLI reports for the same request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import runbook
from runbook.errors import RefusedError, UsageError, ValidationError
from tests.core.conftest import REPO, Project, tree_state
from tests.core.test_guards import closed_window

DEPLOY = """
hosts: localhost
steps:
  - name: Log
    shell: "echo {{ version }} >> {{ t }}/log"
    undo: {none: "appends to a log only"}
  - name: Config
    copy: {content: "version {{ version }}\\n", dest: "{{ t }}/app.conf", mode: "0600"}
  - name: Gate
    shell: "test -e {{ t }}/open"
    undo: none
"""


@pytest.fixture
def t(tmp_path: Path) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    (d / "app.conf").write_text("old\n")
    (d / "app.conf").chmod(0o644)
    return d


@pytest.fixture
def deploy(project: Project, t: Path) -> Project:
    project.runbook("deploy", DEPLOY)
    return project


def test_run_returns_a_typed_outcome(deploy: Project, t: Path) -> None:
    (t / "open").touch()
    out = runbook.run("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t)}, extra_vars=["version=1.2"])
    assert isinstance(out, runbook.Outcome)
    assert out.ok and out.exit_code == 0 and out.status == "success"
    assert (t / "app.conf").read_text() == "version 1.2\n"
    assert out.recap == {"localhost": {"ok": 0, "changed": 3, "failed": 0, "skipped": 0, "rolled_back": 0, "unreachable": 0}}
    assert [s.name for s in out.steps()] == ["Log", "Config", "Gate"]
    assert out.step("Config").outcome == "changed"
    assert out.run_id and not out.dry_run and out.audit_path is None  # RUNBOOK_AUDIT=0 in this project
    assert repr(out).startswith(f"Outcome(run_id={out.run_id!r}, status='success', exit_code=0")
    doc = out.as_dict()
    assert doc["runbook"] == "deploy" and doc["exit_code"] == 0
    assert doc["hosts"]["localhost"]["steps"][1]["name"] == "Config"


def test_the_outcome_is_the_document_the_cli_prints(deploy: Project, t: Path) -> None:
    (t / "open").touch()
    api = runbook.run("deploy", inventory=[str(deploy.root / "inv")], extra_vars=[f"t={t}", "version=1"]).as_dict()
    (t / "app.conf").write_text("old\n")  # the same starting point for the CLI's run
    (t / "app.conf").chmod(0o644)
    res, cli = deploy.exec_json("deploy", "-e", f"t={t}", "-e", "version=1")
    assert res.exit_code == 0
    assert set(api) == set(cli)
    for doc in (api, cli):
        doc.pop("run_id"), doc.pop("duration")
        for s in doc["hosts"]["localhost"]["steps"]:
            s.pop("duration")
    assert api == cli


def test_a_failed_step_is_rolled_back_and_reported_not_raised(deploy: Project, t: Path) -> None:
    before = tree_state(t)
    out = runbook.run("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t), "version": 2})
    assert out.exit_code == 1 and out.status == "rolled_back"
    assert out.step("Gate").outcome == "failed"
    assert out.hosts["localhost"].rollback_status == "ok"
    (t / "log").unlink()  # the shell step's append has no undo, as declared
    assert tree_state(t) == before
    assert "localhost:" in out.message


def test_plan_changes_nothing_and_shows_the_commands(deploy: Project, t: Path) -> None:
    (t / "open").touch()
    before = tree_state(t)
    out = runbook.plan("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t), "version": 3})
    assert out.ok and out.dry_run and out.audit_path is None
    assert tree_state(t) == before
    log = out.step("Log")
    assert log.outcome == "changed" and any("echo 3 >>" in p["summary"] for p in log.planned)
    assert out.as_dict()["dry_run"] is True


def test_plan_of_a_request_ignores_resume_and_start_at(deploy: Project, t: Path) -> None:
    (t / "open").touch()
    req = runbook.RunRequest("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t), "version": 4},
                             start_at="Gate", resume="no-such-run")  # fmt: skip
    out = runbook.plan(req)
    assert out.ok and [s.name for s in out.steps()] == ["Log", "Config", "Gate"]


def test_rollback_undoes_a_finished_run(deploy: Project, t: Path) -> None:
    (t / "open").touch()
    before = tree_state(t)
    done = runbook.run("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t), "version": 5})
    assert done.ok and (t / "app.conf").read_text() == "version 5\n"
    # the run's inventory and extra vars are the ones it saved; the python values too
    undone = runbook.rollback("deploy", done.run_id)
    assert undone.exit_code == 0, undone.message
    assert undone.run_id == f"{done.run_id}-rollback"
    assert undone.recap["localhost"]["rolled_back"] >= 1
    (t / "log").unlink()
    assert tree_state(t) == before
    again = runbook.rollback(runbook.RollbackRequest("deploy", done.run_id))
    assert again.exit_code == 0 and again.hosts == {} and "nothing to roll back" in again.message


def test_rollback_needs_a_run_id(deploy: Project) -> None:
    with pytest.raises(TypeError, match="run id"):
        runbook.rollback("deploy")
    with pytest.raises(runbook.RunbookError, match="no saved state for run 'nope'"):
        runbook.rollback("deploy", "nope")


def test_validate_reports_problems_per_runbook(project: Project) -> None:
    project.runbook("good", "hosts: localhost\nsteps:\n  - debug: {msg: '{{ greeting }}'}\n")
    project.runbook("bad", "hosts: localhost\nsteps:\n  - debug: {msg: '{{ nowhere }}'}\n")
    v = runbook.validate("good", "bad", inventory=[str(project.root / "inv")], vars={"greeting": "hi"})
    assert isinstance(v, runbook.Validation)
    good, bad = v.runbooks
    assert good.ok and good.steps == 1 and good.path.name == "good.yml"
    assert not bad.ok and "nowhere" in str(bad.problems[0])
    assert v.exit_code == 2 and not v.ok and len(v.problems) == 1
    assert runbook.validate("good", extra_vars=["greeting=hi"]).ok
    assert [c.path.name for c in runbook.validate(runbook.ValidateRequest())] == ["bad.yml", "good.yml"]


def test_validate_keeps_the_warnings_apart_from_the_problems(project: Project) -> None:
    project.runbook("warn", "hosts: localhost\nsteps:\n  - name: Echo\n    shell: 'echo {{ word }}'\n")
    (check,) = runbook.validate("warn", extra_vars=["word=hi"])
    assert check.ok and check.lint_warnings and "word" in check.lint_warnings[0]
    assert check.undo_warnings and "Echo" in check.undo_warnings[0]  # a shell step has no automatic undo
    assert check.warnings == [*check.lint_warnings, *check.undo_warnings]
    res = project.cli("validate", "warn", "-e", "word=hi")  # the CLI prints the same, in that order
    assert res.exit_code == 0
    assert [line for line in res.stderr.splitlines() if line.startswith("warning: ")] == [
        f"warning: {w}" for w in check.warnings
    ]


def test_errors_before_a_run_raise_with_the_cli_exit_code(project: Project) -> None:
    with pytest.raises(UsageError) as exc:
        runbook.run("nope")
    assert exc.value.exit_code == 2 and isinstance(exc.value, runbook.RunbookError)
    project.runbook("broken", "hosts: localhost\nsteps:\n  - shell: {}\n")
    with pytest.raises(ValidationError):
        runbook.run("broken")
    project.runbook("hi", "hosts: localhost\nsteps:\n  - debug: {msg: hi}\n")
    with pytest.raises(UsageError, match="--max-output"):
        runbook.run("hi", max_output="lots")


def test_a_closed_window_refuses_unless_forced(project: Project) -> None:
    project.runbook("win", "hosts: localhost\n" + closed_window() + "steps:\n  - debug: {msg: hi}\n")
    with pytest.raises(RefusedError, match="outside the maintenance window") as exc:
        runbook.run("win")
    assert exc.value.exit_code == 3
    assert runbook.run("win", force_window=True).ok
    assert runbook.plan("win").ok  # a dry run changes nothing: no window needed


def test_events_reach_on_event(deploy: Project, t: Path) -> None:
    (t / "open").touch()
    seen: list[str] = []
    out = runbook.run("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t), "version": 6},
                      on_event=lambda ev: seen.append(ev.kind))  # fmt: skip
    assert out.ok
    assert seen[0] == "run.start" and seen[-1] == "run.end"
    assert seen.count("step.end") >= 3


def test_secrets_are_masked_in_the_outcome(deploy: Project, t: Path) -> None:
    (t / "open").touch()
    out = runbook.run("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t), "version": "hunter2-pass"},
                      secrets=["version"])  # fmt: skip
    assert out.ok
    text = json.dumps(out.as_dict(), default=str)
    assert "hunter2-pass" not in text and "***" in text


def test_an_audited_run_names_its_sealed_audit_file(deploy: Project, t: Path, tmp_path: Path) -> None:
    (t / "open").touch()
    out = runbook.run("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t), "version": 7},
                      audit=True, audit_dir=str(tmp_path / "trail"))  # fmt: skip
    assert out.ok and out.audit_path and out.audit_error is None
    assert Path(out.audit_path).is_file() and Path(out.audit_path).is_relative_to(tmp_path / "trail")
    res = deploy.cli("audit", "verify", "--allow-unsigned", out.audit_path)
    assert res.exit_code == 0, res.output


def test_request_types() -> None:
    req = runbook.RunRequest("deploy", tags="a, b", skip_tags=["c,d"], inventory="hosts", extra_vars="x=1")
    assert req.tags == frozenset({"a", "b"}) and req.skip_tags == frozenset({"c", "d"})
    assert req.inventory == ("hosts",) and req.extra_vars == ("x=1",)
    assert req.with_options(dry_run=True).dry_run and not req.dry_run
    with pytest.raises(TypeError):
        runbook.RunRequest("deploy", no_such_option=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        runbook.run("deploy", no_such_option=1)
    rb = runbook.RollbackRequest("deploy", "20260101T000000Z-abc")
    assert rb.run_id == "20260101T000000Z-abc" and rb.inventory == ()


def test_plan_is_callable_and_still_the_planning_package(project: Project) -> None:
    from runbook.plan import planner, validate  # the package's modules import as before

    assert runbook.plan.validate is validate and runbook.plan.planner is planner
    project.runbook("hi", "hosts: localhost\nsteps:\n  - debug: {msg: hi}\n")
    assert runbook.plan("hi").dry_run
    code = "import runbook; out = runbook.plan; import runbook.plan.validate; print(out is runbook.plan, callable(out))"
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["True", "True"]


def test_import_runbook_stays_cheap() -> None:
    code = ("import sys, runbook; heavy = [m for m in ('runbook.execute.engine', 'runbook.session.run', 'jinja2',"
            " 'paramiko', 'rich') if m in sys.modules]; print(heavy); runbook.Outcome; print('runbook.session.result' in sys.modules)")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert res.stdout.split("\n")[:2] == ["[]", "True"]
    with pytest.raises(AttributeError):
        runbook.no_such_name  # noqa: B018


def test_hooks_give_the_transport_and_see_the_events(deploy: Project, t: Path) -> None:
    from runbook.execute.transports import open_transport

    (t / "open").touch()
    made: list[str] = []

    def factory(spec):  # type: ignore[no-untyped-def]
        made.append(spec.name)
        return open_transport(spec)

    seen: list[str] = []
    hooks = runbook.Hooks(transport_factory=factory, observers=lambda: [lambda ev: seen.append(ev.kind)])
    out = runbook.run("deploy", inventory=[str(deploy.root / "inv")], vars={"t": str(t), "version": 8},
                      hooks=hooks, on_event=lambda ev: seen.append("also:" + ev.kind))  # fmt: skip
    assert out.ok and made and set(made) == {"localhost"}
    assert seen[0] == "run.start" and seen[1] == "also:run.start"
