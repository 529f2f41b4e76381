"""Issue 13, CLI conventions: --diff in a real run, -v/-vv/-vvv that differ, --step (confirm each
step at a terminal; refused without one), a closed maintenance window refused with exit 3, diffs
on a narrow terminal wrapped (never cut)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys

import pytest

from tests.core.conftest import REPO, Project
from tests.core.test_guards import closed_window
from tests.ux.test_cli_conventions import _pty_run

WRITES = """
hosts: localhost
steps:
  - name: write the config
    copy: {{content: "{content}", dest: "{dest}"}}
  - name: say
    shell: "echo one; echo two"
"""


def test_diff_shows_what_a_real_run_wrote(project: Project) -> None:
    dest = project.root / "app.conf"
    dest.write_text("port=1\n")
    project.runbook("w", WRITES.format(content="port=2\\n", dest=dest))
    plain = project.exec("w")
    assert plain.exit_code == 0, plain.output
    assert "+port=2" not in plain.output  # without --diff: no diff
    dest.write_text("port=1\n")
    res = project.exec("w", "--diff")
    assert res.exit_code == 0, res.output
    assert f"wrote {dest}" in res.output
    assert "-port=1" in res.output and "+port=2" in res.output
    assert dest.read_text() == "port=2\n"  # it really ran


def test_each_verbosity_level_adds_its_own_detail(project: Project) -> None:
    dest = project.root / "c.txt"
    project.runbook("w", WRITES.format(content="x", dest=dest))
    outs = [project.exec("w", *([f"-{'v' * n}"] if n else [])).output for n in range(4)]
    assert "rc=0, stdout: 2 line(s)" not in outs[0]
    assert "rc=0, stdout: 2 line(s)" in outs[1] and "| two" in outs[1]  # -v: results
    assert "$ echo one; echo two" not in outs[1]
    assert "$ echo one; echo two" in outs[2]  # -vv: the commands as run
    assert "connecting: localhost: local" not in outs[2]
    assert "connecting: localhost: local" in outs[3]  # -vvv: how the host is reached
    help_text = " ".join(project.cli("exec", "--help").output.split())
    assert "-vv also the commands as run" in help_text and "--diff" in help_text and "--step" in help_text


def test_step_refuses_without_a_terminal(project: Project, tmp_path: os.PathLike[str]) -> None:
    marker = project.root / "ran"
    project.runbook("s", f"hosts: localhost\nsteps:\n  - file: {{path: '{marker}', state: touch}}\n")
    res = project.exec("s", "--step")
    assert res.exit_code == 2
    assert "--step asks before each step, but stdin is not a terminal" in res.output
    assert not marker.exists()


def test_step_asks_before_each_step(project: Project) -> None:
    a, b, c, d = (project.root / n for n in "abcd")
    project.runbook("s", f"""
        hosts: localhost
        steps:
          - {{name: make a, file: {{path: "{a}", state: touch}}}}
          - {{name: make b, file: {{path: "{b}", state: touch}}}}
          - {{name: make c, file: {{path: "{c}", state: touch}}}}
          - {{name: make d, file: {{path: "{d}", state: touch}}}}
        rollback: none
        """)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNBOOK_AUDIT": "0", "NO_COLOR": "1"}
    # y (run a), n (skip b), then an answer that is not one (asked again), c (c, and d unasked)
    out = _answer_on_a_terminal(
        [sys.executable, "-m", "runbook", "exec", "s", "-i", "inv", "--step"], env, project.root,
        "Perform step", ["y", "n", "maybe", "c"],
    )  # fmt: skip
    assert a.exists() and not b.exists() and c.exists() and d.exists(), out
    assert out.count("Perform step") == 4, out  # a, b, c twice (the bad answer), never d
    assert "declined at --step" in out


def _answer_on_a_terminal(args: list[str], env: dict[str, str], cwd: object, prompt: str, answers: list[str]) -> str:
    """Run the CLI on a pseudo-terminal and type the next answer each time the prompt shows."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    out, asked = "", 0
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk.decode(errors="replace")
        while out.count(prompt) > asked and answers:
            asked += 1
            os.write(master, (answers.pop(0) + "\n").encode())
    proc.wait(timeout=60)
    os.close(master)
    return out


def test_a_closed_window_is_refused_before_any_change_with_exit_3(project: Project) -> None:
    marker = project.root / "ran"
    project.runbook("win", "hosts: localhost\n" + closed_window() + f"steps:\n  - file: {{path: '{marker}', state: touch}}\n")
    for fmt in ("text", "json", "junit"):
        res = project.exec("win", "--output", fmt)
        assert res.exit_code == 3, (fmt, res.output)
    assert not marker.exists()


def test_a_long_diff_line_is_wrapped_on_a_narrow_terminal_not_cut(project: Project) -> None:
    words = [f"word{i:02d}" for i in range(40)]
    dest = project.root / "long.conf"
    project.runbook("w", WRITES.format(content=" ".join(words), dest=dest))
    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNBOOK_AUDIT": "0", "NO_COLOR": "1", "COLUMNS": "60"}
    out = _pty_run([sys.executable, "-m", "runbook", "plan", "w", "-i", "inv"], env, project.root)
    assert all(w in out for w in words), out  # every word of the line is shown


def test_new_output_holds_no_terminal_escapes(project: Project) -> None:
    dest = project.root / "esc.txt"
    project.runbook("esc", f"""
        hosts: localhost
        steps:
          - name: "item {{{{ item }}}}"
            shell: 'printf "\\033[31m%s\\033[0m\\n" {{{{ item | quote }}}}'
            loop: ["\\e[1mbold", plain]
          - copy: {{content: "\\e[32mgreen\\n", dest: "{dest}"}}
        """)  # fmt: skip
    res = project.exec("esc", "-vvv", "--diff")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "| item item " in res.output
    res, _ = project.exec_json("esc", "-vv", "--diff")
    assert "\x1b" not in res.stdout and "\\u001b" not in res.stdout


def test_the_audit_keeps_a_diff_as_its_digest(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    dest = project.root / "app.conf"
    project.runbook("w", WRITES.format(content="port=2\\n", dest=dest))
    res = project.exec("w", "--diff", "--audit-dir", str(project.root / "audit"))
    assert res.exit_code == 0 and "+port=2" in res.output, res.output
    records = [json.loads(line) for f in (project.root / "audit").glob("*.jsonl") for line in f.read_text().splitlines()]
    diffs = [d for r in records if r.get("event") == "step.end" for d in (r.get("data") or {}).get("diffs", [])]
    assert len(diffs) == 1 and diffs[0]["summary"].startswith(str(dest)) and len(diffs[0]["diff_sha256"]) == 64
    assert "port=2" not in json.dumps(records)
