"""`runbook validate` warns (file:line:column, never an error) where a runbook puts a variable into
shell text unquoted — `shell:`, `command:` and check.version's `command:` — as ansible-lint does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runbook.kinds.base import KnownModules
from runbook.kinds.shellvars import unquoted_shell_vars
from runbook.model.runbook import load_runbook


def _warnings(tmp_path: Path, steps: str) -> list[str]:
    path = tmp_path / "rb.yml"
    path.write_text("name: t\nhosts: localhost\nsteps:\n" + textwrap.indent(textwrap.dedent(steps), "  "))
    return [str(w) for w in unquoted_shell_vars(load_runbook(path, KnownModules()))]


@pytest.mark.parametrize(
    "cmd, warned",
    [
        ("echo {{ name }}", "unquoted"),
        ("echo {{ name | quote }}", None),
        ("echo {{ name | shell_quote }}", None),
        ("echo {{ name | default('x') | quote }}", None),
        ("echo {{ port | int }}", None),
        ("echo {{ ratio | float }}", None),
        ("echo {{ items | length }}", None),
        ("echo {{ port | int | default(80) }}", None),
        ("echo {{ 8080 }}", None),
        ("echo {{ 'literal text' }}", None),
        ("echo {{ name is defined }}", None),
        ("echo {{ a > b }}", None),
        ("echo {{ n - 1 }}", None),
        ("echo {{ n + 1 }}", "unquoted"),  # + joins strings too
        ("echo {{ ('x=' ~ (name | quote)) if name else '' }}", None),
        ("echo {{ name if flag else 'none' }}", "unquoted"),
        ("echo {{ name | upper }}", "unquoted"),
        ("echo {{ name | to_json }}", "unquoted"),
        ('echo "{{ name }}"', "double quotes"),
        ('echo "{{ name | quote }}"', "double quotes"),  # "'$(x)'" still runs $(x)
        ('echo "{{ port | int }}"', None),
        ("echo '{{ name }}'", "single quotes"),
        ("echo 'it''s' {{ name }}", "unquoted"),
        ("echo ok # {{ name }} in a comment", None),
        ("echo a\\#{{ name }}", "unquoted"),
        ("echo {{ '{{' }}not a var{{ '}}' }}", None),
    ],
)
def test_which_expressions_are_warned_about(cmd: str, warned: str | None, tmp_path: Path) -> None:
    got = _warnings(tmp_path, f"- shell: {cmd!r}\n".replace("\\\\", "\\"))
    if warned is None:
        assert got == []
    else:
        assert len(got) == 1 and warned in got[0], got


@pytest.mark.parametrize(
    "script, states",
    [
        ("cat > f <<EOF\n{{ a | quote }}\nEOF\necho {{ b | quote }}\n", ["here-document", None]),
        ("cat <<'EOF'\n{{ a | quote }}\nEOF\n", ["here-document"]),  # a line 'EOF' in a ends it
        ("cat <<-END | grep x\n\t{{ a }}\n\tEND\necho {{ b | quote }}\n", ["here-document", None]),
        ("cat <<EOF\nn={{ n | int }}\nEOF\n", [None]),
        ("echo $((1 << 2)) {{ a | quote }}\necho {{ b | quote }}\n", [None, None]),
    ],
)
def test_here_documents_expand_like_double_quotes(
    script: str, states: list[str | None], tmp_path: Path
) -> None:
    got = _warnings(tmp_path, "- shell: |\n" + textwrap.indent(script, "    "))
    want = [s for s in states if s]
    assert len(got) == len(want) and all(w in g for w, g in zip(want, got, strict=True)), got


def test_every_shell_like_argument_is_checked_and_argv_is_not(tmp_path: Path) -> None:
    got = _warnings(
        tmp_path,
        """\
        - shell: {cmd: "rm -rf {{ a }}", chdir: "{{ d }}", env: {X: "{{ e }}"}, stdin: "{{ s }}"}
        - command: "ls {{ b }}"
        - command: {argv: [ls, "{{ c }}"]}
        - check.version: {of: tool, command: "tool --version {{ f }}"}
        - check.version: {of: tool, command: [tool, "{{ g }}"]}
        - debug: {msg: "{{ h }}"}
        """,
    )
    assert [w.split(": ", 2)[1] for w in got] == ["shell", "command", "check.version command"]
    assert ["{{ a }}" in got[0], "{{ b }}" in got[1], "{{ f }}" in got[2]] == [True, True, True]


def test_nested_undo_and_fallback_steps_are_checked(tmp_path: Path) -> None:
    got = _warnings(
        tmp_path,
        """\
        - shell: "true"
          undo: {shell: "rm -- {{ u }}"}
          fallback:
            - shell: "echo {{ f }}"
        """,
    )
    assert len(got) == 2 and "{{ u }}" in got[0] and "{{ f }}" in got[1]


def test_warning_names_the_line_and_column_in_a_block_scalar(tmp_path: Path) -> None:
    got = _warnings(
        tmp_path,
        """\
        - name: probe
          shell: |
            set -e
            port={{ port | int }}
            echo {{ name }} and {{ name }}
            curl "http://x/{{ path }}"
        """,
    )
    file = tmp_path / "rb.yml"
    lines = file.read_text().splitlines()
    assert [w.split(": ", 1)[0] for w in got] == [
        f"{file}:8:{lines[7].index('name') + 1}",
        f"{file}:8:{lines[7].rindex('name') + 1}",
        f"{file}:9:{lines[8].index('path') + 1}",
    ]
    assert "write {{ name | quote }}" in got[0] and "double quotes" in got[2]


def test_validate_prints_warnings_and_still_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "playbooks").mkdir()
    rb = tmp_path / "playbooks" / "w.yml"
    rb.write_text(
        textwrap.dedent(
            """\
            name: w
            hosts: localhost
            vars: {who: world}
            steps:
              - name: greet
                shell: echo hello {{ who }}
              - name: greet safely
                shell: echo hello {{ who | quote }}
            """
        )
    )
    res = cli("validate", "w")
    assert res.exit_code == 0, res.output
    assert f"warning: {rb}:6:" in res.output and "{{ who }} is put into the command unquoted" in res.output
    assert res.output.count("is put into the command unquoted") == 1
    assert f"ok: {rb}" in res.output
