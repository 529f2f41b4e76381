"""A block's time budget (`budget:`), as seed 004 times every phase: warn says so in the log and the
audit; fail starts none of the block's steps once the time is spent and fails the block (its rescue,
else the rollback). The waits below are longer than the budgets by design: no timing is asserted."""

from __future__ import annotations

from pathlib import Path

from tests.core.conftest import Project

RUNBOOK = """
hosts: localhost
steps:
  - name: Final validation
    budget: {budget}
    block:
      - wait: {{seconds: 0.4}}
      - copy: {{content: "x\\n", dest: "{{{{ t }}}}/after.txt"}}
    rescue:
      - copy: {{content: "{{{{ ansible_failed_result.msg }}}}\\n", dest: "{{{{ t }}}}/rescued.txt"}}
"""


def _run(project: Project, t: Path, budget: str, rescue: bool = False) -> tuple[int, dict]:
    text = RUNBOOK.format(budget=budget)
    if not rescue:
        text = text.split("    rescue:")[0]
    project.inventory()
    project.runbook("b", text)
    res, doc = project.exec_json("b", "-e", f"t={t}")
    return res.exit_code, doc


def test_a_block_over_its_budget_warns_by_default(project: Project, tmp_path: Path) -> None:
    code, _ = _run(project, tmp_path, "0.1")
    assert code == 0 and (tmp_path / "after.txt").exists()  # warn: the block ran to its end
    res = project.exec("b", "-e", f"t={tmp_path}")
    assert (
        "budget warning: block 'Final validation' took" in res.output and "over its 0.1s budget" in res.output
    )


def test_on_exceed_fail_starts_no_step_once_the_time_is_spent(project: Project, tmp_path: Path) -> None:
    code, doc = _run(project, tmp_path, "{time: 0.1, on_exceed: fail}")
    assert code == 1 and not (tmp_path / "after.txt").exists()
    assert "not started: block 'Final validation' spent its 0.1s budget" in doc["message"]


def test_a_spent_budget_is_a_failure_the_blocks_rescue_handles(project: Project, tmp_path: Path) -> None:
    code, doc = _run(project, tmp_path, "{time: 0.1, on_exceed: fail}", rescue=True)
    assert code == 0, doc["message"]  # rescued, as Ansible's rescue
    assert "spent its 0.1s budget" in (tmp_path / "rescued.txt").read_text()


def test_within_its_budget_nothing_is_said(project: Project, tmp_path: Path) -> None:
    project.inventory()
    project.runbook("b", RUNBOOK.format(budget='"10m"').split("    rescue:")[0])
    res = project.exec("b", "-e", f"t={tmp_path}")
    assert res.exit_code == 0 and "budget" not in res.output


def test_budget_is_checked_when_the_runbook_is_read(project: Project) -> None:
    project.inventory()
    cases = {
        "  - name: one\n    budget: 5m\n    debug: {msg: x}\n": "budget applies to a block of steps",
        "  - budget: soon\n    block:\n      - debug: {msg: x}\n": "budget: not a duration: 'soon'",
        "  - budget: {time: 5m, on_exceed: panic}\n    block:\n      - debug: {msg: x}\n": "on_exceed must be warn or fail",
        "  - budget: 0\n    block:\n      - debug: {msg: x}\n": "budget must be a positive duration",
    }
    for steps, message in cases.items():
        project.runbook("bad", "hosts: localhost\nsteps:\n" + steps)
        res = project.cli("validate", "bad", "-i", str(project.root / "inv"))
        assert res.exit_code == 2 and message in res.output, (steps, res.output)
