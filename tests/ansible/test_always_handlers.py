"""Handlers notified by the always: phase's steps run too, once, at its end (as after the steps)."""

from __future__ import annotations

from pathlib import Path

from tests.core.conftest import Project


def test_a_handler_notified_in_always_runs_once_at_its_end(project: Project, tmp_path: Path) -> None:
    project.inventory()
    project.runbook(
        "h",
        f"""
        hosts: localhost
        steps:
          - name: work
            debug: {{msg: working}}
        always:
          - name: note one
            copy: {{content: "1\\n", dest: "{tmp_path}/one"}}
            notify: tell
          - name: note two
            copy: {{content: "2\\n", dest: "{tmp_path}/two"}}
            notify: tell
        handlers:
          - name: tell
            shell: echo told >> {tmp_path}/told
            changes: false
        """,
    )
    res = project.exec("h")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "told").read_text() == "told\n"  # once, after both
