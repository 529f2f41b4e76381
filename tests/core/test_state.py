"""Run state under .runbook/: `runbook rollback NAME --run ID` undoes a finished run from its saved
snapshots; --resume continues a failed run; --start-at skips ahead."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.core.conftest import Project, tree_state

DEPLOY = """
hosts: localhost
rollback: {rollback}
steps:
  - name: A
    shell: "echo A >> {{{{ t }}}}/log"
    undo: {{none: "appends to a log only"}}
  - name: Config
    copy: {{content: "new\\n", dest: "{{{{ t }}}}/app.conf", mode: "0600"}}
  - name: Gate
    shell: "echo Gate >> {{{{ t }}}}/log; test -e {{{{ t }}}}/open"
    undo: none
  - name: Data
    copy: {{content: "data\\n", dest: "{{{{ t }}}}/data/file"}}
"""


@pytest.fixture
def t(tmp_path: Path) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    (d / "app.conf").write_text("old\n")
    (d / "app.conf").chmod(0o644)
    return d


def run_id_of(project: Project, *args: str) -> tuple[int, str, dict]:
    res, doc = project.exec_json("deploy", *args)
    return res.exit_code, doc["run_id"], doc


def test_state_is_saved_privately_with_snapshots(project: Project, t: Path) -> None:
    (t / "open").touch()
    project.runbook("deploy", DEPLOY.format(rollback="auto"))
    code, run_id, _ = run_id_of(project, "-e", f"t={t}")
    assert code == 0
    path = project.root / ".runbook" / "runs" / run_id / "state.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    state = json.loads(path.read_text())
    host = state["hosts"]["localhost"]
    assert host["status"] == "ok" and host["last_completed"] == 3
    config = next(e for e in host["entries"] if e["name"] == "Config")
    assert config["snapshots"][0]["existed"] is True


def test_rollback_command_undoes_a_finished_run(project: Project, t: Path) -> None:
    (t / "open").touch()
    before = tree_state(t)
    project.runbook("deploy", DEPLOY.format(rollback="auto"))
    code, run_id, _ = run_id_of(project, "-e", f"t={t}")
    assert code == 0
    assert (t / "app.conf").read_text() == "new\n" and (t / "data" / "file").exists()

    res = project.cli("rollback", "deploy", "--run", run_id)  # not a terminal, no --yes: refused
    assert res.exit_code == 2 and "pass --yes" in res.stderr
    assert (t / "app.conf").read_text() == "new\n"

    res = project.cli("rollback", "deploy", "--run", run_id[:12], "--yes")  # a unique prefix will do
    assert res.exit_code == 0, res.output
    assert "localhost: will undo Data, Gate, Config, A" in res.stdout
    assert "needs no undo: appends to a log only" in res.stdout
    (t / "log").unlink()  # written by the shell steps, which have nothing to undo
    assert tree_state(t) == before

    res = project.cli("rollback", "deploy", "--run", run_id, "--yes")
    assert res.exit_code == 0 and "nothing to roll back" in res.stdout


def test_rollback_of_an_unknown_run(project: Project) -> None:
    project.runbook("deploy", DEPLOY.format(rollback="auto"))
    res = project.cli("rollback", "deploy", "--run", "nope", "--yes")
    assert res.exit_code == 2
    assert "no saved state for run 'nope'" in res.stderr


def test_resume_continues_after_the_last_completed_step(project: Project, t: Path) -> None:
    project.runbook("deploy", DEPLOY.format(rollback="none"))
    code, run_id, _ = run_id_of(project, "-e", f"t={t}")
    assert code == 1
    assert (t / "log").read_text() == "A\nGate\n"
    (t / "open").touch()
    res, doc = project.exec_json("deploy", "-e", f"t={t}", "--resume", run_id)
    assert res.exit_code == 0, res.output
    assert [s["name"] for s in doc["hosts"]["localhost"]["steps"]] == ["Gate", "Data"]
    assert (t / "log").read_text() == "A\nGate\nGate\n"  # A did not run again
    assert (t / "data" / "file").read_text() == "data\n"
    state = json.loads((project.root / ".runbook" / "runs" / run_id / "state.json").read_text())
    assert state["hosts"]["localhost"]["status"] == "ok"


def test_resume_redoes_steps_the_failed_run_rolled_back(project: Project, t: Path) -> None:
    project.runbook("deploy", DEPLOY.format(rollback="auto"))
    code, run_id, _ = run_id_of(project, "-e", f"t={t}")
    assert code == 1
    assert (t / "app.conf").read_text() == "old\n"  # rolled back
    (t / "open").touch()
    res, doc = project.exec_json("deploy", "-e", f"t={t}", "--resume", run_id)
    assert res.exit_code == 0, res.output
    assert [s["name"] for s in doc["hosts"]["localhost"]["steps"]] == ["Config", "Gate", "Data"]
    assert (t / "app.conf").read_text() == "new\n"


def test_resume_of_an_unknown_run(project: Project, t: Path) -> None:
    project.runbook("deploy", DEPLOY.format(rollback="auto"))
    res = project.exec("deploy", "--resume", "nope")
    assert res.exit_code == 2
    assert "no saved state for run 'nope'" in res.stderr


@pytest.mark.parametrize("start", ["Gate", "3", "steps[2]"])
def test_start_at(project: Project, t: Path, start: str) -> None:
    (t / "open").touch()
    project.runbook("deploy", DEPLOY.format(rollback="auto"))
    res, doc = project.exec_json("deploy", "-e", f"t={t}", "--start-at", start)
    assert res.exit_code == 0, res.output
    assert [s["name"] for s in doc["hosts"]["localhost"]["steps"]] == ["Gate", "Data"]
    assert (t / "app.conf").read_text() == "old\n"


def test_start_at_an_unknown_step_is_a_usage_error(project: Project, t: Path) -> None:
    project.runbook("deploy", DEPLOY.format(rollback="auto"))
    res = project.exec("deploy", "-e", f"t={t}", "--start-at", "Nope")
    assert res.exit_code == 2
    assert "--start-at: no step named 'Nope'" in res.stderr
    assert not (t / "log").exists()
    assert not (project.root / ".runbook").exists()


def test_rollback_reuses_the_runs_inventory_and_extra_vars(project: Project, t: Path) -> None:
    project.inventory("h1 ansible_connection=local\nh2 ansible_connection=local\n")
    project.runbook(
        "svc",
        """
        hosts: all
        steps:
          - name: Start
            shell: "echo started > {{ t }}/{{ inventory_hostname }}.run"
            undo:
              shell: "rm {{ t }}/{{ inventory_hostname }}.run"
        """,
    )
    res, doc = project.exec_json("svc", "-e", f"t={t}")
    assert res.exit_code == 0
    assert (t / "h1.run").exists() and (t / "h2.run").exists()
    # neither -i nor -e: the saved state knows both (h1/h2 are local only in that inventory)
    res = project.cli("rollback", "svc", "--run", doc["run_id"], "--yes", "--output", "json")
    assert res.exit_code == 0, res.output
    assert not (t / "h1.run").exists() and not (t / "h2.run").exists()


def test_rollback_with_another_runbook_is_refused(project: Project, t: Path) -> None:
    (t / "open").touch()
    project.runbook("deploy", DEPLOY.format(rollback="auto"))
    project.runbook("other", "hosts: localhost\nsteps:\n  - debug: {msg: x}\n")
    code, run_id, _ = run_id_of(project, "-e", f"t={t}")
    assert code == 0
    res = project.cli("rollback", "other", "--run", run_id, "--yes")
    assert res.exit_code == 2
    assert (
        f"run {run_id} was a run of" in res.stderr and "give the runbook that run used: deploy" in res.stderr
    )
    res = project.exec("other", "--resume", run_id)
    assert res.exit_code == 2
    assert (t / "app.conf").read_text() == "new\n"
