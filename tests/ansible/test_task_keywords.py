"""Ansible task keywords inside runbooks, through the real CLI on this machine: notify on undo,
environment, args, check_mode, assert with bare expressions, lookups, and the errors that name the
runbook way for what runbook does not support."""

from __future__ import annotations

from pathlib import Path

from tests.core.conftest import Project


def test_notify_on_undo_runs_the_handler_once_the_file_is_restored(project: Project, tmp_path: Path) -> None:
    conf, log = tmp_path / "proxy.conf", tmp_path / "reloads.log"
    conf.write_text("upstream old\n")
    project.runbook(
        "proxy",
        f"""
        vars: {{conf: "{conf}", log: "{log}"}}
        steps:
          - name: new proxy config
            copy: {{content: "upstream new\\n", dest: "{{{{ conf }}}}"}}
            notify: reload proxy
          - name: health check fails
            shell: exit 1
            changes: false
        handlers:
          - name: reload proxy
            shell: echo "reload $(cat {{{{ conf | quote }}}})" >> {{{{ log | quote }}}}
            undo: none
        """,
    )
    res = project.exec("proxy")
    assert res.exit_code == 1, res.output  # failed, rolled back
    assert conf.read_text() == "upstream old\n"
    # not run after the change (the host failed before its handlers), once after the restore
    assert log.read_text().splitlines() == ["reload upstream old"]
    assert "running the handlers notified by the undone steps: reload proxy" in res.output


def test_handler_runs_once_at_the_end_only_when_a_notifier_changed(project: Project, tmp_path: Path) -> None:
    log = tmp_path / "h.log"
    project.runbook(
        "h",
        f"""
        vars: {{log: "{log}"}}
        steps:
          - {{name: probe, shell: "true", changes: false, notify: h1}}
          - {{name: change1, shell: "echo c1 >> {{{{ log | quote }}}}", notify: [h2]}}
          - {{name: change2, shell: "echo c2 >> {{{{ log | quote }}}}", notify: h2}}
        handlers:
          - {{name: h1, shell: "echo h1 >> {{{{ log | quote }}}}"}}
          - {{name: h2, shell: "echo h2 >> {{{{ log | quote }}}}"}}
        """,
    )
    res = project.exec("h")
    assert res.exit_code == 0, res.output
    assert log.read_text().split() == ["c1", "c2", "h2"]


def test_environment_args_and_check_mode(project: Project, tmp_path: Path) -> None:
    out, never = tmp_path / "env.out", tmp_path / "never"
    project.runbook(
        "kw",
        f"""
        vars: {{app_env: {{GREETING: hello, OTHER: x}}}}
        steps:
          - name: env
            shell: echo "$GREETING $OTHER" > {out}
            environment: "{{{{ app_env }}}}"
            args:
              chdir: {tmp_path}
              env: {{OTHER: own}}
          - name: planned only
            shell: touch {never}
            check_mode: true
          - name: probe in plans too
            command: "cat {out}"
            check_mode: false
            register: probe
          - assert:
              that:
                - "probe.stdout == 'hello own'"
                - probe.rc == 0
        """,
    )
    res = project.exec("kw")
    assert res.exit_code == 0, res.output
    assert out.read_text() == "hello own\n"
    assert not never.exists()
    res = project.plan("kw")
    assert res.exit_code == 0, res.output


def test_assert_takes_bare_expressions(project: Project) -> None:
    project.runbook(
        "a",
        """
        vars: {x: {stdout: y}}
        steps:
          - assert: {that: ["x.stdout == 'z'"], fail_msg: "stdout is {{ x.stdout }}"}
        """,
    )
    res = project.exec("a")
    assert res.exit_code == 1 and "stdout is y" in res.output, res.output


def test_lookups_and_pipe_only_for_literal_commands(project: Project, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RB_LOOKUP_TEST", "from-env")
    (project.root / "playbooks" / "files").mkdir()
    (project.root / "playbooks" / "files" / "motd").write_text("hello file\n")
    project.template("greet.j2", "hi {{ who }}")
    project.runbook(
        "l",
        """
        vars: {who: you}
        steps:
          - set_fact:
              e: "{{ lookup('env', 'RB_LOOKUP_TEST') }}"
              f: "{{ lookup('file', 'motd') }}"
              p: "{{ lookup('pipe', 'echo piped') }}"
              t: "{{ lookup('ansible.builtin.template', '../templates/greet.j2') }}"
          - assert: {that: ["e == 'from-env'", "f == 'hello file'", "p == 'piped'", "t == 'hi you'"]}
        """,
    )
    res = project.exec("l")
    assert res.exit_code == 0, res.output
    project.runbook(
        "bad",
        """
        vars: {cmd: "touch /tmp/pwned"}
        steps:
          - debug: {msg: "{{ lookup('pipe', cmd) }}"}
        """,
    )
    res = project.cli("validate", "bad", "-i", str(project.root / "inv"))
    assert res.exit_code == 2 and "runs only a command written literally" in res.output, res.output


def test_unsupported_syntax_names_the_runbook_way(project: Project) -> None:
    cases = {
        "roles": (
            "hosts: all\nroles: [web]\ntasks:\n  - debug: {msg: x}\n",
            "include_tasks: roles/NAME/tasks/main.yml",
        ),
        "local_action": ("steps:\n  - local_action: {module: shell, cmd: x}\n", "delegate_to: localhost"),
        "include_role": (
            "steps:\n  - include_role: {name: web}\n",
            "include_tasks: roles/NAME/tasks/main.yml",
        ),
        "dynamic include": (
            'steps:\n  - include_tasks: "{{ f }}.yml"\n',
            "includes only files named literally",
        ),
        "unknown handler": (
            "steps:\n  - {shell: x, notify: restrat app}\nhandlers:\n  - {name: restart app, shell: y}\n",
            "did you mean 'restart app'?",
        ),
        "check_mode false": (
            "steps:\n  - {copy: {content: x, dest: /tmp/x}, check_mode: false}\n",
            "runs only read-only probes in a plan",
        ),
    }
    for name, (text, hint) in cases.items():
        project.runbook("u", text)
        res = project.cli("validate", "u", "-i", str(project.root / "inv"))
        assert res.exit_code == 2 and hint in res.output, (name, res.output)


def test_a_rescued_blocks_change_is_still_rolled_back_by_a_later_failure(project: Project, tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("v1\n")
    project.runbook(
        "rescued",
        f"""
        steps:
          - block:
              - name: write v2
                copy: {{content: "v2\\n", dest: "{conf}"}}
              - name: flaky
                shell: exit 1
                changes: false
            rescue:
              - name: note it
                debug: {{msg: "rescued {{{{ ansible_failed_task.name }}}}"}}
          - name: later failure
            shell: exit 2
            changes: false
        """,
    )
    res, doc = project.exec_json("rescued")
    assert res.exit_code == 1, res.output  # the rescued failure did not stop the run; the later one did
    steps = project.steps(doc)
    assert steps["note it"]["msg"] == "rescued flaky"
    assert doc["status"] == "rolled_back" and conf.read_text() == "v1\n"  # the block's change undone
