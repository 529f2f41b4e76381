"""`runbook rollback` runs the runbook's always: steps too, so the team hears about a manual rollback
(seen as run.status rolled_back / rollback_failed, and run.rollback_of naming the run undone)."""

from __future__ import annotations

from pathlib import Path

from tests.core.conftest import Project

RUNBOOK = """
hosts: localhost
steps:
  - name: write config
    copy: {content: "new\\n", dest: "{{ t }}/app.conf"}
always:
  - name: tell the team
    copy:
      content: "{{ run.status }} {{ run.rollback_of | default('-') }}\\n"
      dest: "{{ t }}/notified-{{ run.id }}"
"""


def test_always_runs_after_a_manual_rollback_and_sees_its_status(project: Project, tmp_path: Path) -> None:
    t = tmp_path / "t"
    t.mkdir()
    (t / "app.conf").write_text("old\n")
    project.inventory()
    project.runbook("rb", RUNBOOK)
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    run_id = doc["run_id"]
    assert (t / f"notified-{run_id}").read_text() == "success -\n"
    back = project.cli("rollback", "rb", "-i", str(project.root / "inv"), "--run", run_id, "--yes", "-e", f"t={t}")
    assert back.exit_code == 0, back.output
    assert (t / "app.conf").read_text() == "old\n"  # undone
    notes = sorted(p.name for p in t.glob("notified-*") if p.name != f"notified-{run_id}")
    assert len(notes) == 1, notes
    assert (t / notes[0]).read_text() == f"rolled_back {run_id}\n"
    assert "tell the team" in back.output
