"""`fallback:` steps (Ansible's block/rescue for one step) and undo precedence: a failed step runs its
fallback steps; if they all succeed the step is recovered, else it fails and rollback undoes the
fallback steps and the step itself, newest first. A step's own `undo:` wins over its module's undo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.conftest import Project, tree_state


@pytest.fixture
def t(tmp_path: Path) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    (d / "app.conf").write_text("old\n")
    return d


RECOVERS = """
hosts: localhost
steps:
  - name: Deploy the primary way
    shell: "echo primary >> {{ t }}/log; exit 3"
    fallback:
      - name: "Fallback: write the config"
        copy: {content: "fallback\\n", dest: "{{ t }}/app.conf"}
      - name: "Fallback: remember why"
        shell: "echo {{ ansible_failed_result.rc }} > {{ t }}/why"
  - name: Afterwards
    shell: "echo after >> {{ t }}/log"
"""


def test_a_failed_step_is_recovered_by_its_fallback_steps(project: Project, t: Path) -> None:
    project.runbook("rb", RECOVERS)
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    host = doc["hosts"]["localhost"]
    names = [s["name"] for s in host["steps"]]
    assert names == [
        "Deploy the primary way",
        "Fallback: write the config",
        "Fallback: remember why",
        "Afterwards",
    ]
    primary = host["steps"][0]
    assert primary["outcome"] == "changed"  # the fallback changed something
    assert primary["msg"].startswith("recovered by fallback: ")
    assert host["stats"]["failed"] == 0
    assert (t / "app.conf").read_text() == "fallback\n"
    assert (t / "why").read_text() == "3\n"  # the failed result is there for the fallback steps
    assert (t / "log").read_text() == "primary\nafter\n"


def test_recovered_step_shows_why_on_the_console(project: Project, t: Path) -> None:
    project.runbook("rb", RECOVERS)
    res = project.exec("rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    assert "running 2 fallback step(s)" in res.stdout
    assert "recovered by fallback:" in res.stdout


def test_fallback_steps_are_full_steps(project: Project, t: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Primary
            fail: {msg: primary is down}
            fallback:
              - name: Second way, retried until it works
                shell: "echo x >> {{ t }}/tries; wc -l < {{ t }}/tries"
                register: second
                until: second.stdout | int >= 2
                retries: 3
                delay: 0
              - name: Skipped fallback step
                shell: "touch {{ t }}/never"
                when: false
          - name: Uses the fallback's register
            copy: {content: "{{ second.stdout | trim }}", dest: "{{ t }}/registered"}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    steps = project.steps(doc)
    assert steps["Second way, retried until it works"]["attempts"] == 2
    assert steps["Skipped fallback step"]["outcome"] == "skipped"
    assert steps["Primary"]["outcome"] == "changed"
    assert steps["Primary"]["msg"] == "recovered by fallback: primary is down"
    assert (t / "registered").read_text() == "2"
    assert not (t / "never").exists()


def test_a_failing_fallback_fails_the_step_and_rolls_back_fallback_and_step(
    project: Project, t: Path
) -> None:
    before = tree_state(t)
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Write the config
            copy: {content: "primary\\n", dest: "{{ t }}/app.conf"}
            failed_when: true           # it changed the file, then counts as failed
            fallback:
              - name: "Fallback: another file"
                copy: {content: "fallback\\n", dest: "{{ t }}/other.conf"}
              - name: "Fallback: breaks too"
                fail: {msg: fallback broken}
          - name: Never reached
            shell: "touch {{ t }}/never"
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 1, res.output
    host = doc["hosts"]["localhost"]
    steps = project.steps(doc)
    assert steps["Write the config"]["outcome"] == "failed"
    assert (
        "fallback step 'Fallback: breaks too' failed too: fallback broken" in steps["Write the config"]["msg"]
    )
    undone = [s["name"] for s in host["steps"] if s["phase"] == "rollback"]
    assert undone == ["undo: Fallback: another file", "undo: Write the config"]  # newest first
    assert host["rollback"] == "ok"
    assert tree_state(t) == before


def test_rollback_after_recovery_undoes_the_fallback_and_the_original_step(project: Project, t: Path) -> None:
    """Like coolify.deploy: the original step's snapshot is undone too (its undo must still be called)."""
    before = tree_state(t)
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Primary
            copy: {content: "primary\\n", dest: "{{ t }}/app.conf"}
            failed_when: true
            fallback:
              - name: "Fallback: write"
                copy: {content: "fallback\\n", dest: "{{ t }}/other.conf"}
          - name: Later failure
            fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 1, res.output
    host = doc["hosts"]["localhost"]
    assert project.steps(doc)["Primary"]["outcome"] == "changed"
    undone = [s["name"] for s in host["steps"] if s["phase"] == "rollback"]
    assert undone == ["undo: Fallback: write", "undo: Primary"]
    assert tree_state(t) == before


def test_ignore_errors_applies_after_the_fallback_failed(project: Project, t: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Optional
            fail: {msg: nope}
            ignore_errors: true
            fallback:
              - fail: {msg: fallback nope}
          - name: Goes on
            shell: "touch {{ t }}/went-on"
        """,
    )
    res, _ = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    assert (t / "went-on").exists()


def test_no_fallback_when_the_step_succeeds_or_is_skipped(project: Project, t: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Works
            shell: "true"
            fallback:
              - shell: "touch {{ t }}/fallback-1"
          - name: Skipped
            fail: {msg: x}
            when: false
            fallback:
              - shell: "touch {{ t }}/fallback-2"
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    assert [s["name"] for s in doc["hosts"]["localhost"]["steps"]] == ["Works", "Skipped"]
    assert not list(t.glob("fallback-*"))


def test_dry_run_plans_the_fallback_steps_and_changes_nothing(project: Project, t: Path) -> None:
    project.runbook("rb", RECOVERS)
    before = tree_state(t)
    res = project.plan("rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    assert "Fallback: write the config" in res.stdout
    assert "+fallback" in res.stdout  # the diff of the file the fallback would write
    res = project.plan("rb", "-e", f"t={t}", "--output", "json")
    doc = json.loads(res.stdout)
    planned = project.steps(doc)["Fallback: write the config"]["planned"]
    assert planned and planned[0]["kind"] == "file"
    assert tree_state(t) == before


def test_fallback_is_validated_like_any_step(project: Project) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Primary
            shell: "false"
            fallback:
              - copy: {content: x, dset: /tmp/x}
        """,
    )
    res = project.cli("validate", "rb")
    assert res.exit_code == 2
    assert "copy: unknown argument 'dset'" in res.stderr and "rb.yml:6:" in res.stderr
    project.runbook("bad", "hosts: localhost\nsteps:\n  - shell: 'false'\n    fallback: {shell: x}\n")
    res = project.cli("validate", "bad")
    assert res.exit_code == 2 and "fallback must be a non-empty list of steps" in res.stderr


def test_preflight_fallback_steps_must_be_read_only(project: Project) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        preflight:
          - shell: "false"
            fallback:
              - copy: {content: x, dest: /tmp/x}
        steps:
          - debug: {msg: x}
        """,
    )
    res = project.cli("validate", "rb")
    assert res.exit_code == 2 and "preflight must be read-only, but 'copy' changes things" in res.stderr


def test_show_and_schema_know_fallback(project: Project) -> None:
    project.runbook("rb", RECOVERS)
    res = project.cli("show", "rb")
    assert res.exit_code == 0, res.output
    assert "fallback: 2 step(s)" in res.stdout
    assert "fallback 1. Fallback: write the config" in res.stdout
    schema = json.loads(project.cli("schema").stdout)
    shell = next(v for v in schema["$defs"]["step"]["oneOf"] if "shell" in v["required"])
    assert shell["properties"]["fallback"]["items"] == {"$ref": "#/$defs/step"}


def test_a_steps_own_undo_wins_over_the_modules_undo(project: Project, t: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Config
            copy: {content: "new\\n", dest: "{{ t }}/app.conf"}
            undo:
              shell: "echo custom > {{ t }}/undo-ran; echo old > {{ t }}/app.conf"
          - fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 1, res.output
    assert (t / "undo-ran").read_text() == "custom\n"  # the step's own undo ran ...
    assert (t / "app.conf").read_text() == "old\n"  # ... and what it restored was checked
    assert doc["hosts"]["localhost"]["stats"]["rolled_back"] == 1


def test_an_undo_step_sees_the_loop_item(project: Project, t: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Start
            shell: "touch {{ t }}/{{ item }}.run"
            loop: [a, b]
            undo:
              shell: "rm {{ t }}/{{ item }}.run"
          - fail: {msg: injected}
        """,
    )
    res, _ = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 1, res.output
    assert not list(t.glob("*.run"))
