"""A malformed runbook is refused before anything runs: exit 2, an error naming file:line:column,
a hint saying what to do, and never a traceback."""

from __future__ import annotations

import pytest

from tests.core.conftest import Project


def refused(project: Project, name: str, text: str, *, where: str, says: str, hint: str | None = None) -> str:
    """Write the runbook, run both `validate` and `exec`; both must refuse it the same way."""
    path = project.runbook(name, text)
    outputs = []
    for args in (("validate", name, "-i", "inv"), ("exec", name, "-i", "inv")):
        res = project.cli(*args)
        out = res.stdout + res.stderr
        assert res.exit_code == 2, out
        assert "Traceback" not in out
        assert f"{path}:{where}:" in out, out
        assert says in out, out
        if hint is not None:
            assert "hint:" in out and hint in out, out
        outputs.append(out)
    assert not (project.root / ".runbook").exists(), "a refused runbook must not start a run"
    return outputs[1]


def test_unknown_runbook_key_suggests_the_right_one(project: Project) -> None:
    out = refused(
        project,
        "typo",
        """
        name: typo
        hosts: localhost
        stepz:
          - shell: echo hi
        """,
        where="3:1",
        says="unknown runbook key 'stepz'",
        hint="did you mean 'steps'?",
    )
    assert "no preflight and no steps" not in out or out.count("error:") == 2


def test_misspelt_step_keyword_is_named_with_a_suggestion(project: Project) -> None:
    out = refused(
        project,
        "kw",
        """
        hosts: localhost
        steps:
          - name: say hi
            shell: echo hi
            registr: out
        """,
        where="5:5",
        says="unknown step keyword 'registr'",
        hint="did you mean 'register'?",
    )
    assert "no preflight and no steps" not in out  # no follow-on noise


def test_wrong_keyword_type_says_what_was_expected(project: Project) -> None:
    refused(
        project,
        "types",
        """
        hosts: localhost
        steps:
          - shell: echo hi
            retries: [1]
        """,
        where="4:5",
        says="retries must be an integer or a string",
    )


def test_wrong_runbook_level_types(project: Project) -> None:
    refused(
        project,
        "rtypes",
        """
        hosts: localhost
        tags: {a: 1}
        steps:
          - shell: echo hi
        """,
        where="2:1",
        says="tags must be a list, got a mapping",
    )
    refused(
        project,
        "vtypes",
        """
        hosts: localhost
        vars: [1, 2]
        steps:
          - shell: echo hi
        """,
        where="2:1",
        says="vars must be a mapping",
    )


def test_unknown_module_suggests_the_closest(project: Project) -> None:
    refused(
        project,
        "mod",
        """
        hosts: localhost
        steps:
          - shel: echo hi
        """,
        where="3:5",
        says="unknown module 'shel'",
        hint="did you mean 'shell'?",
    )


def test_bad_jinja_syntax_in_an_argument(project: Project) -> None:
    refused(
        project,
        "jinja",
        """
        hosts: localhost
        steps:
          - copy:
              content: "{{ greeting }"
              dest: /tmp/x
        """,
        where="4:7",
        says="template syntax error",
        hint="{{ }}",
    )


def test_bad_jinja_in_a_condition_and_in_vars(project: Project) -> None:
    path = project.runbook(
        "cond",
        """
        hosts: localhost
        vars:
          broken: "{% if %}"
        steps:
          - shell: echo hi
            when: "x ==="
        """,
    )
    res = project.cli("validate", "cond", "-i", "inv")
    assert res.exit_code == 2
    assert f"{path}:6:5: when: template syntax error" in res.stderr
    assert f"{path}:3:3: template syntax error" in res.stderr
    assert "Traceback" not in res.stderr


def test_yaml_syntax_error(project: Project) -> None:
    refused(
        project,
        "yaml",
        """
        hosts: localhost
        steps:
          - shell: echo hi
           name: misindented
        """,
        where="4:4",
        says="YAML syntax error",
        hint="indentation",
    )


def test_tab_indentation_is_a_yaml_error(project: Project) -> None:
    refused(
        project, "tabs", "hosts: localhost\nsteps:\n\t- shell: echo\n", where="3:1", says="YAML syntax error"
    )


def test_duplicate_keys_are_refused(project: Project) -> None:
    refused(
        project,
        "dup",
        """
        hosts: localhost
        steps:
          - shell: echo hi
            shell: echo ho
        """,
        where="4:5",
        says="duplicate key 'shell' (first at line 3)",
        hint="remove one",
    )


def test_several_module_keys(project: Project) -> None:
    refused(
        project,
        "two",
        """
        hosts: localhost
        steps:
          - shell: echo hi
            command: echo ho
        """,
        where="4:5",
        says="has several module keys: shell, command",
        hint="one step per module",
    )


def test_a_step_given_as_a_string(project: Project) -> None:
    refused(
        project,
        "str",
        """
        hosts: localhost
        steps:
          - echo hi
        """,
        where="3:5",
        says="steps item 1 is a string",
        hint="'- shell: echo hi'",
    )


def test_steps_must_be_a_list(project: Project) -> None:
    refused(
        project,
        "map",
        """
        hosts: localhost
        steps:
          shell: echo
        """,
        where="2:1",
        says="'steps' must be a list of steps",
    )


def test_unknown_module_argument(project: Project) -> None:
    refused(
        project,
        "arg",
        """
        hosts: localhost
        steps:
          - copy:
              content: x
              dset: /tmp/x
        """,
        where="5:7",
        says="copy: unknown argument 'dset'",
        hint="did you mean 'dest'?",
    )


def test_missing_required_argument(project: Project) -> None:
    refused(
        project,
        "req",
        """
        hosts: localhost
        steps:
          - copy: {content: x}
        """,
        where="3:5",
        says="copy: missing required argument 'dest'",
        hint="add 'dest:'",
    )


def test_literal_argument_of_the_wrong_type(project: Project) -> None:
    out = refused(
        project,
        "argtype",
        """
        hosts: localhost
        preflight:
          - check.port: {port: not-a-port}
        steps:
          - copy:
              content: x
              dest: [1]
        """,
        where="7:7",
        says="copy: invalid argument dest: [1] is not of type 'string'",
    )
    assert "3:18: check.port: invalid argument port: 'not-a-port' is not of type 'integer'" in out


def test_mutating_module_in_preflight(project: Project) -> None:
    refused(
        project,
        "pre",
        """
        hosts: localhost
        preflight:
          - copy: {content: x, dest: /tmp/x}
        steps:
          - shell: echo
        """,
        where="3:5",
        says="preflight must be read-only, but 'copy' changes things",
        hint="move this step to 'steps:'",
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "a runbook must be a YAML mapping"),
        ("- hosts: a\n  steps: [{shell: x}]\n- hosts: b\n  steps: [{shell: x}]\n", "holds 2 plays"),
        ("hosts: localhost\n", "no preflight and no steps"),
    ],
)
def test_not_a_runbook_at_all(project: Project, text: str, says: str) -> None:
    project.runbook("odd", "placeholder: 1\n")
    (project.root / "playbooks" / "odd.yml").write_text(text)
    res = project.cli("exec", "odd", "-i", "inv")
    assert res.exit_code == 2
    assert says in res.stderr and ":1:1:" in res.stderr
    assert "Traceback" not in res.stderr


def test_all_errors_of_a_file_are_reported_at_once(project: Project) -> None:
    project.runbook(
        "many",
        """
        hosts: localhost
        forks: 0
        steps:
          - shel: echo
          - shell: echo
            retries: [1]
        """,
    )
    res = project.cli("validate", "many")
    assert res.exit_code == 2
    assert "forks must be a positive integer" in res.stderr
    assert "unknown module 'shel'" in res.stderr
    assert "retries must be" in res.stderr


def test_unknown_runbook_name_lists_the_available_ones(project: Project) -> None:
    project.runbook("present", "hosts: localhost\nsteps: [{shell: echo}]\n")
    res = project.cli("exec", "absent", "-i", "inv")
    assert res.exit_code == 2
    assert "no runbook named 'absent'" in res.stderr and "available: present" in res.stderr


def test_bad_extra_vars_are_a_usage_error(project: Project) -> None:
    project.runbook("ok", "hosts: localhost\nsteps: [{shell: echo}]\n")
    for bad, says in [
        ("novalue", "expected key=value"),
        ("1x=2", "not a valid variable name"),
        ("@nofile.yml", "not found"),
    ]:
        res = project.cli("exec", "ok", "-i", "inv", "-e", bad)
        assert res.exit_code == 2, res.output
        assert says in res.stderr
        assert "Traceback" not in res.stderr


def test_vars_files_errors_name_the_file(project: Project) -> None:
    (project.root / "playbooks" / "vars").mkdir(parents=True)
    (project.root / "playbooks" / "vars" / "bad.yml").write_text("a: [\n")
    path = project.runbook(
        "vf", "hosts: localhost\nvars_files: [vars/none.yml, vars/bad.yml]\nsteps: [{shell: echo}]\n"
    )
    res = project.cli("exec", "vf", "-i", "inv")
    assert res.exit_code == 2
    assert f"{path}:2:1: vars file not found: {path.parent / 'vars' / 'none.yml'}" in res.stderr
    assert f"{path.parent / 'vars' / 'bad.yml'}:2:1: YAML syntax error" in res.stderr
    assert "Traceback" not in res.stderr
