"""No secret in clear in the run state, the audit, the console or the JSON output: step arguments are
saved as written (templates) and rendered again to undo; secret -e values are masked in the state and
must be passed again to roll back or resume (the error names them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.conftest import Project

IN_VARS, IN_EXTRA, IN_INVENTORY = "canary-vars-7f3a91", "canary-extra-52c0d4", "canary-inv-c81e66"
# printed by a no_log step: its registered result is never saved
IN_NO_LOG = "canary-nolog-3d9e27"
CANARIES = (IN_VARS, IN_EXTRA, IN_INVENTORY, IN_NO_LOG)

RUNBOOK = f"""
hosts: localhost
vars:
  api_token: {IN_VARS}
steps:
  - name: Use every secret
    shell: "echo {{{{ api_token }}}} {{{{ db_password }}}} {{{{ service_token }}}}"
    changes: false
    register: used  # saved in the run state for --resume: redacted
  - name: Fetch a private value
    shell: "echo {IN_NO_LOG}"
    changes: false
    register: private
    no_log: true
  - name: Write a config holding them
    copy:
      content: "{{{{ api_token }}}}/{{{{ db_password }}}}/{{{{ service_token }}}}\\n"
      dest: "{{{{ t }}}}/secret.conf"
      mode: "0600"
  - name: One file per user
    copy: {{content: "x", dest: "{{{{ t }}}}/{{{{ item.name }}}}.user"}}
    loop:
      - {{name: alice, password: "{{{{ service_token }}}}"}}
  - name: Start the service
    shell: "echo started > {{{{ t }}}}/svc"
    undo:
      shell: "rm {{{{ t }}}}/svc; echo {{{{ db_password }}}} > {{{{ t }}}}/../undo-saw"
"""


@pytest.fixture
def secret_project(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.delenv("RUNBOOK_AUDIT")  # audit on: it must not hold the secrets either
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    project.inventory(f"localhost ansible_connection=local service_token={IN_INVENTORY}\n")
    project.runbook("sec", RUNBOOK)
    (tmp_path / "t").mkdir()
    return project


def everything_saved(root: Path) -> str:
    """Every file the runs left on the control machine: run state and audit."""
    files = [*(root / ".runbook").rglob("*.json"), *(root / "audit").rglob("*.jsonl")]
    assert files
    return "".join(p.read_text() for p in files)


def assert_no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"secret {canary} found in {where}"


def test_canary_secrets_are_nowhere_and_rollback_asks_for_secret_extra_vars(
    secret_project: Project, tmp_path: Path
) -> None:
    p, t = secret_project, tmp_path / "t"
    res, doc = p.exec_json("sec", "-e", f"t={t}", "-e", f"db_password={IN_EXTRA}")
    assert res.exit_code == 0, res.output
    assert (t / "secret.conf").read_text() == f"{IN_VARS}/{IN_EXTRA}/{IN_INVENTORY}\n"  # it did use them
    assert_no_canary(res.stdout + res.stderr, "the JSON output")
    assert_no_canary(everything_saved(p.root), "the state or audit files")

    state = json.loads((p.root / ".runbook" / "runs" / doc["run_id"] / "state.json").read_text())
    assert state["meta"]["extra_vars"]["db_password"] == "***"
    assert state["meta"]["secret_extra_vars"] == ["db_password"]
    entries = {e["name"]: e for e in state["hosts"]["localhost"]["entries"]}
    assert entries["Write a config holding them"]["args"]["content"].startswith("{{ api_token }}")
    assert entries["One file per user"]["item"] == {"item": {"name": "alice", "password": "***"}}

    res = p.cli("rollback", "sec", "--run", doc["run_id"], "--yes")
    assert res.exit_code == 2
    assert "secret extra vars that its saved state does not keep: db_password" in res.stderr
    assert "-e db_password=..." in res.stderr
    assert (t / "svc").exists()  # nothing was undone

    res = p.cli("rollback", "sec", "--run", doc["run_id"], "--yes", "-e", f"db_password={IN_EXTRA}")
    assert res.exit_code == 0, res.output
    assert_no_canary(res.stdout + res.stderr, "the rollback's console")
    assert not (t / "svc").exists() and not (t / "alice.user").exists()
    assert not (t / "secret.conf").exists()  # undone from its snapshot, arguments rendered again
    assert (tmp_path / "undo-saw").read_text() == f"{IN_EXTRA}\n"  # the undo step got the value again
    assert_no_canary(everything_saved(p.root), "the state or audit files after the rollback")

    res = p.exec("sec", "-e", f"t={t}", "-e", f"db_password={IN_EXTRA}", "-v")
    assert res.exit_code == 0, res.output
    assert_no_canary(res.stdout + res.stderr, "the console")


def test_resume_asks_for_secret_extra_vars_again(secret_project: Project, tmp_path: Path) -> None:
    p, t = secret_project, tmp_path / "t"
    p.runbook(
        "sec",
        RUNBOOK.replace("rm {{ t }}/svc;", "true;")
        + '  - name: Gate\n    shell: "test -e {{ t }}/open"\n'
        + "rollback: none\n",
    )
    res, doc = p.exec_json("sec", "-e", f"t={t}", "-e", f"db_password={IN_EXTRA}")
    assert res.exit_code == 1
    (t / "open").touch()
    res = p.exec("sec", "--resume", doc["run_id"], "-e", f"t={t}")
    assert res.exit_code == 2
    assert "db_password" in res.stderr and "pass them again for --resume" in res.stderr
    res, resumed = p.exec_json("sec", "--resume", doc["run_id"], "-e", f"db_password={IN_EXTRA}")
    assert res.exit_code == 0, res.output  # t came back from the saved state; db_password was given
    assert [s["name"] for s in resumed["hosts"]["localhost"]["steps"]] == ["Gate"]
    assert_no_canary(everything_saved(p.root), "the state or audit files")


def test_rollback_later_undoes_what_ran_not_what_renders_now(project: Project, tmp_path: Path) -> None:
    """A later `runbook rollback` uses the arguments as they ran (a registered variable is gone by then,
    an -e value may be given differently); only masked secrets are rendered again."""
    t = tmp_path / "t"
    t.mkdir()
    (t / "first.conf").write_text("before\n")
    project.runbook(
        "reg",
        f"""
        hosts: localhost
        vars: {{api_token: {IN_VARS}}}
        steps:
          - name: Where
            shell: "echo {{{{ t }}}}/{{{{ which }}}}.conf"
            changes: false
            register: where
          - name: Write
            copy: {{content: "token={{{{ api_token }}}}", dest: "{{{{ where.stdout }}}}"}}
        """,
    )
    res, doc = project.exec_json("reg", "-e", f"t={t}", "-e", "which=first")
    assert res.exit_code == 0, res.output
    assert (t / "first.conf").read_text() == f"token={IN_VARS}"
    res = project.cli("rollback", "reg", "--run", doc["run_id"], "--yes", "-e", "which=second")
    assert res.exit_code == 0, res.output
    assert (t / "first.conf").read_text() == "before\n"
    assert_no_canary(res.stdout + res.stderr, "the rollback's console")
