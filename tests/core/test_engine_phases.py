"""Phases: preflight (read-only, exit 3), steps, rollback (auto from snapshots, or an explicit list),
always; the exit codes that go with them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.core.conftest import Project, tree_state


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A small tree the runbooks change: files with distinct modes, a directory, a symlink."""
    t = tmp_path / "target"
    t.mkdir()
    (t / "app.conf").write_text("old config\nline 2\n")
    (t / "app.conf").chmod(0o640)
    (t / "keep.txt").write_bytes(b"\x00binary\xffkeep\n")
    (t / "keep.txt").chmod(0o600)
    (t / "old_dir" / "nested").mkdir(parents=True)
    (t / "old_dir" / "nested" / "data").write_text("precious\n")
    (t / "old_dir" / "nested" / "data").chmod(0o604)
    os.symlink("app.conf", t / "link")
    return t


def vars_for(target: Path) -> list[str]:
    return ["-e", f"t={target}", "-e", f"runbook_backup_dir={target.parent / 'backups'}"]


CHANGES = """
  - name: Rewrite config
    copy: {content: "new config\\n", dest: "{{ t }}/app.conf", mode: "0644"}
  - name: Render template
    template: {src: conf.j2, dest: "{{ t }}/new.conf", mode: "0600"}
  - name: Loosen keep.txt
    file: {path: "{{ t }}/keep.txt", mode: "0644"}
  - name: Make a directory
    file: {path: "{{ t }}/made/sub", state: directory}
  - name: Remove a directory
    file: {path: "{{ t }}/old_dir", state: absent}
  - name: Repoint the link
    file: {path: "{{ t }}/link", src: "{{ t }}/new.conf", state: link, force: true}
"""


def test_step_failure_rolls_back_every_change_byte_for_byte(project: Project, target: Path) -> None:
    project.template("conf.j2", "host={{ inventory_hostname }}\n")
    project.runbook("rb", "hosts: localhost\nsteps:" + CHANGES + "  - name: Boom\n    shell: exit 3\n")
    before = tree_state(target)
    res, doc = project.exec_json("rb", *vars_for(target))
    assert res.exit_code == 1, res.output
    assert doc["status"] == "rolled_back"
    host = doc["hosts"]["localhost"]
    assert host["stats"]["changed"] == 6 and host["stats"]["failed"] == 1
    assert host["stats"]["rolled_back"] == 6
    assert host["rollback"] == "ok"
    undone = [s["name"] for s in host["steps"] if s["phase"] == "rollback"]
    assert undone == [
        "undo: Repoint the link",
        "undo: Remove a directory",
        "undo: Make a directory",
        "undo: Loosen keep.txt",
        "undo: Render template",
        "undo: Rewrite config",
    ]
    assert tree_state(target) == before


def test_the_same_changes_stay_when_nothing_fails(project: Project, target: Path) -> None:
    project.template("conf.j2", "host={{ inventory_hostname }}\n")
    project.runbook("rb", "hosts: localhost\nsteps:" + CHANGES)
    res = project.exec("rb", *vars_for(target))
    assert res.exit_code == 0, res.output
    assert (target / "app.conf").read_text() == "new config\n"
    assert (target / "app.conf").stat().st_mode & 0o777 == 0o644
    assert (target / "new.conf").read_text() == "host=localhost\n"
    assert not (target / "old_dir").exists()
    assert os.readlink(target / "link") == str(target / "new.conf")
    # and a second run changes nothing
    res, doc = project.exec_json("rb", *vars_for(target))
    assert res.exit_code == 0
    assert doc["hosts"]["localhost"]["stats"]["changed"] == 0


def test_preflight_failure_exits_3_and_changes_nothing(project: Project, target: Path) -> None:
    project.template("conf.j2", "x\n")
    project.runbook(
        "rb",
        """
        hosts: localhost
        preflight:
          - name: disk
            check.disk: {path: /, min_free_gb: 1}
          - name: Needs a marker file
            shell: "test -e {{ t }}/READY"
        steps:
          - name: Rewrite config
            copy: {content: "new\\n", dest: "{{ t }}/app.conf"}
        """,
    )
    before = tree_state(target)
    res, doc = project.exec_json("rb", *vars_for(target))
    assert res.exit_code == 3, res.output
    assert doc["status"] == "preflight_failed"
    assert "nothing was changed" in doc["message"]
    steps = project.steps(doc)
    assert steps["disk"]["outcome"] == "ok"
    assert steps["Needs a marker file"]["outcome"] == "failed"
    assert "Rewrite config" not in steps
    assert tree_state(target) == before


def test_preflight_shell_is_a_read_only_probe(project: Project, target: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        preflight:
          - name: probe
            shell: "test -d {{ t }}"
        steps:
          - debug: {msg: hi}
        """,
    )
    res, doc = project.exec_json("rb", *vars_for(target))
    assert res.exit_code == 0
    assert project.steps(doc)["probe"]["outcome"] == "ok"  # a probe is never "changed"


def test_a_failing_undo_exits_4_and_says_a_human_must_act(project: Project, target: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Rewrite config
            copy: {content: "new\\n", dest: "{{ t }}/app.conf"}
          - name: Start something
            shell: "true"
            undo:
              shell: "echo cannot stop it >&2; exit 7"
          - name: Boom
            fail: {msg: injected}
        """,
    )
    res = project.exec("rb", *vars_for(target))
    assert res.exit_code == 4, res.output
    assert "rollback_failed (exit 4)" in res.stdout
    assert "ROLLBACK FAILED on localhost: a human must act" in res.stdout
    # the other undo still ran: the config is back
    assert (target / "app.conf").read_text() == "old config\nline 2\n"


def test_explicit_rollback_list_uses_snapshots(project: Project, target: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Write config
            copy: {content: "broken\\n", dest: "{{ t }}/app.conf"}
          - name: Boom
            fail: {msg: injected}
        rollback:
          - name: Restore config from its snapshot
            copy:
              content: "{{ snapshots['Write config'].content_b64 | b64decode }}"
              dest: "{{ snapshots['Write config'].path }}"
          - name: Note
            debug: {msg: "restored {{ snapshots['Write config'].path | basename }}"}
        """,
    )
    res, doc = project.exec_json("rb", *vars_for(target))
    assert res.exit_code == 1, res.output
    assert (target / "app.conf").read_text() == "old config\nline 2\n"
    steps = project.steps(doc)
    assert steps["Restore config from its snapshot"]["phase"] == "rollback"
    assert steps["Note"]["msg"] == "restored app.conf"


def test_a_failing_explicit_rollback_exits_4(project: Project, target: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - copy: {content: "x", dest: "{{ t }}/app.conf"}
          - fail: {msg: injected}
        rollback:
          - shell: exit 2
        """,
    )
    res = project.exec("rb", *vars_for(target))
    assert res.exit_code == 4, res.output


def test_rollback_none_leaves_changes_in_place(project: Project, target: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        rollback: none
        steps:
          - copy: {content: "x", dest: "{{ t }}/app.conf"}
          - fail: {msg: injected}
        """,
    )
    res = project.exec("rb", *vars_for(target))
    assert res.exit_code == 1
    assert (target / "app.conf").read_text() == "x"


ALWAYS = """
always:
  - name: status
    debug: {msg: "{{ run.status }}"}
  - name: marker
    copy: {content: "{{ run.status }}", dest: "{{ t }}/always.txt"}
"""


@pytest.mark.parametrize(
    ("steps", "code", "status"),
    [
        ("  - debug: {msg: fine}\n", 0, "success"),
        ("  - copy: {content: x, dest: '{{ t }}/app.conf'}\n  - fail: {msg: boom}\n", 1, "rolled_back"),
        ("  - fail: {msg: boom}\n", 1, "failed"),
    ],
)
def test_always_runs_after_success_and_failure_with_run_status(
    project: Project, target: Path, steps: str, code: int, status: str
) -> None:
    project.runbook("rb", "hosts: localhost\nsteps:\n" + steps + ALWAYS)
    res, doc = project.exec_json("rb", *vars_for(target))
    assert res.exit_code == code, res.output
    assert doc["status"] == status
    assert project.steps(doc)["status"]["msg"] == status
    assert (target / "always.txt").read_text() == status


def test_always_runs_after_a_preflight_failure(project: Project, target: Path) -> None:
    project.runbook(
        "rb",
        "hosts: localhost\npreflight:\n  - shell: 'false'\nsteps:\n  - debug: {msg: x}\n" + ALWAYS,
    )
    res = project.exec("rb", *vars_for(target))
    assert res.exit_code == 3
    assert (target / "always.txt").read_text() == "preflight_failed"


SCOPED = """
hosts: all
rollback_scope: {scope}
steps:
  - name: Write host file
    copy: {{content: "new", dest: "{{{{ t }}}}/{{{{ inventory_hostname }}}}.txt"}}
  - name: Fail on h2
    fail: {{msg: injected}}
    when: inventory_hostname == 'h2'
"""


@pytest.mark.parametrize(("scope", "h1_after"), [("host", "new"), ("all", "old")])
def test_rollback_scope(project: Project, target: Path, scope: str, h1_after: str) -> None:
    project.inventory("h1 ansible_connection=local\nh2 ansible_connection=local\n")
    for h in ("h1", "h2"):
        (target / f"{h}.txt").write_text("old")
    project.runbook("rb", SCOPED.format(scope=scope))
    res, doc = project.exec_json("rb", *vars_for(target))
    assert res.exit_code == 1, res.output
    assert (target / "h2.txt").read_text() == "old"
    assert (target / "h1.txt").read_text() == h1_after
    assert doc["hosts"]["h1"]["failed"] is False
    assert doc["hosts"]["h1"]["rollback"] == ("ok" if scope == "all" else None)


def test_loop_items_and_delegated_steps_are_rolled_back(project: Project, target: Path) -> None:
    project.inventory("web1 ansible_connection=local\n")
    project.runbook(
        "rb",
        """
        hosts: web1
        steps:
          - name: One file per item
            copy: {content: "{{ item }}", dest: "{{ t }}/item-{{ item }}"}
            loop: [a, b, c]
          - name: On the control machine
            copy: {content: "delegated", dest: "{{ t }}/app.conf"}
            delegate_to: localhost
          - name: Undo where it ran
            shell: "touch {{ t }}/started"
            delegate_to: localhost
            undo:
              shell: "rm {{ t }}/started"
          - fail: {msg: injected}
        """,
    )
    before = tree_state(target)
    res, doc = project.exec_json("rb", *vars_for(target))
    assert res.exit_code == 1, res.output
    assert doc["hosts"]["web1"]["stats"]["rolled_back"] == 5  # 3 items, the copy, the shell
    assert tree_state(target) == before
