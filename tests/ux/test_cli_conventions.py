"""CLI conventions an ops engineer expects: --list-hosts/--list-steps, NO_COLOR, no terminal escapes
in captured output, JSON or JUnit, step start/end lines with UTC times in a log, JUnit that CI
servers accept, `audit show` at 80 columns."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.core.conftest import REPO, Project

ESC = "\x1b"
SGR = re.compile(r"\x1b\[[0-9;]*m")  # a colour or style sequence
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"

COLOURFUL = """
name: colourful
hosts: localhost
steps:
  - name: say hello
    shell: 'printf "\\033[31mred\\033[0m \\033]0;title\\007done\\n"'
  - name: not today
    debug: {msg: never}
    when: false
  - name: fails
    shell: 'printf "\\033[1mbold failure\\033[0m\\n" >&2; exit 3'
rollback: none
"""


def test_list_hosts_shows_hosts_and_batches_and_runs_nothing(project: Project) -> None:
    project.inventory("[web]\nw1\nw2\nw3\nw4\n")
    marker = project.root / "ran"
    project.runbook("rolling", f"""
        hosts: web
        serial: [1, "50%"]
        steps:
          - name: touch
            file: {{path: "{marker}", state: touch}}
        """)  # fmt: skip
    for cmd in ("exec", "plan"):
        res = project.cli(cmd, "rolling", "-i", "inv", "--list-hosts")
        assert res.exit_code == 0, res.output
        assert "hosts (4):" in res.stdout and "    w4" in res.stdout
        # a batch size of 1, then 50% of the 4 hosts (2), repeating: the last batch holds the rest
        assert "1. w1\n    2. w2, w3\n    3. w4\n" in res.stdout
        limited = project.cli(cmd, "rolling", "-i", "inv", "--list-hosts", "-l", "w1,w2")
        assert "hosts (2):" in limited.stdout and "w3" not in limited.stdout
    assert not marker.exists()


def test_list_steps_shows_every_phase(project: Project) -> None:
    project.runbook("phases", """
        hosts: localhost
        preflight:
          - {name: mem, check.memory: {min_mb: 1}}
        steps:
          - name: deploy
            shell: "false"
            tags: [deploy]
            fallback:
              - {name: plan b, debug: {msg: b}}
        always:
          - {name: tell, debug: {msg: done}}
        """)  # fmt: skip
    res = project.cli("exec", "phases", "--list-steps")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "  preflight:" in lines and "    1. mem  (check.memory)" in lines
    assert "    1. deploy  (shell)  TAGS: [deploy]" in lines and "        fallback 1. plan b  (debug)" in lines
    assert "  always:" in lines and "  rollback: auto" in lines
    assert "RECAP" not in res.stdout


def test_a_log_gets_a_line_when_each_step_starts_and_ends(project: Project) -> None:
    project.runbook("colourful", COLOURFUL)
    res = project.exec("colourful")
    out = res.stdout
    assert re.search(rf"^{STAMP} +start localhost \| say hello$", out, re.M), out
    assert re.search(rf"^{STAMP} +changed localhost \| say hello", out, re.M), out
    assert re.search(rf"^{STAMP} +FAILED localhost \| fails", out, re.M), out
    assert re.search(rf"^{STAMP} +skipped localhost \| not today", out, re.M), out  # its end, too
    starts = re.findall(rf"^{STAMP} +start ", out, re.M)
    ends = re.findall(rf"^{STAMP} +(?:ok|changed|FAILED|skipped) ", out, re.M)
    assert len(starts) == len(ends) == 3


def test_captured_output_and_json_hold_no_terminal_escapes(project: Project) -> None:
    project.runbook("colourful", COLOURFUL)
    res = project.exec("colourful", "-v")
    assert ESC not in res.output and "\x07" not in res.output
    assert "bold failure" in res.output  # the text stays, the codes go
    res, doc = project.exec_json("colourful")
    assert ESC not in res.stdout and "\\u001b" not in res.stdout and "\\u0007" not in res.stdout
    assert project.steps(doc)["say hello"]["stdout"].strip() == "red done"


REQUIRED = {  # the attributes the common JUnit XSD (Jenkins, GitLab) requires
    "testsuites": {"name", "tests", "failures", "errors", "skipped", "time"},
    "testsuite": {"name", "tests", "failures", "errors", "skipped", "time"},
    "testcase": {"name", "classname", "time"},
}


def check_junit(text: str) -> ET.Element:
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text), "XML 1.0 cannot hold control characters"
    root = ET.fromstring(text.encode())
    assert root.tag == "testsuites"
    for el in root.iter():
        missing = REQUIRED.get(el.tag, set()) - set(el.attrib)
        assert not missing, (el.tag, missing)
        if el.tag in ("testsuites", "testsuite"):
            for k in ("tests", "failures", "errors", "skipped"):
                assert el.attrib[k].isdigit(), (el.tag, k)
            float(el.attrib["time"])
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        assert int(suite.attrib["tests"]) == len(cases)
        for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.attrib[attr]) == sum(c.find(tag) is not None for c in cases), attr
    for k in ("tests", "failures", "errors", "skipped"):
        assert int(root.attrib[k]) == sum(int(s.attrib[k]) for s in root.iter("testsuite"))
    return root


JUNIT = """
name: junit
hosts: all
rollback: none
steps:
  - name: say hello
    shell: 'printf "\\033[31mred\\033[0m\\n"'
  - name: not today
    debug: {msg: never}
    when: false
  - name: fails on h1
    shell: 'printf "\\033[1mbold failure\\033[0m\\n" >&2; exit 3'
    when: inventory_hostname == "h1"
  - name: a template error on h2
    debug: {msg: "{{ nope }}"}
    when: inventory_hostname == "h2"
"""


def test_junit_passes_the_schema_ci_servers_read(project: Project) -> None:
    project.inventory("h1 ansible_connection=local\nh2 ansible_connection=local\n")
    project.runbook("junit", JUNIT)
    res = project.exec("junit", "--output", "junit", "--junit-file", "report.xml")
    assert res.exit_code == 1
    for text in (res.stdout, (project.root / "report.xml").read_text()):
        root = check_junit(text)
        suites = {s.attrib["name"]: s.attrib for s in root.iter("testsuite")}
        assert (suites["junit@h1"]["failures"], suites["junit@h1"]["errors"]) == ("1", "0")
        assert (suites["junit@h2"]["failures"], suites["junit@h2"]["errors"]) == ("0", "1")
        assert root.attrib["skipped"] == str(sum(int(s["skipped"]) for s in suites.values())) != "0"
        assert "bold failure" in text and ESC not in text


def test_junit_of_an_unreachable_host_is_an_error(project: Project) -> None:
    project.inventory("gone ansible_host=127.0.0.1 ansible_port=9 ansible_user=nobody\n")
    project.runbook("far", "hosts: gone\nsteps:\n  - {name: hi, shell: 'true'}\n")
    res = project.exec("far", "--output", "junit")
    root = check_junit(res.stdout)
    assert int(root.attrib["errors"]) + int(root.attrib["failures"]) >= 1


def _pty_run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run the real CLI on a pseudo-terminal (a TTY, as an operator's) and return what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    out = b""
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
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    return out.decode(errors="replace")


@pytest.mark.parametrize("no_color", [False, True])
def test_no_color_on_a_terminal(project: Project, no_color: bool) -> None:
    project.runbook("colourful", COLOURFUL)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(REPO), RUNBOOK_AUDIT="0")
    if no_color:
        env["NO_COLOR"] = "1"
    out = _pty_run([sys.executable, "-m", "runbook", "exec", "colourful", "-i", "inv"], env, project.root)
    assert "RECAP" in out, out
    colours = [m for m in SGR.findall(out) if m not in ("\x1b[0m", "\x1b[m")]
    if no_color:
        assert not colours, colours[:5]
        assert "\x1b]0;title" not in out  # the command's own escapes never reach the terminal either
    else:
        assert colours  # the same run, coloured: the test would see colours if there were any


def test_audit_show_is_readable_at_80_columns(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    monkeypatch.setenv("COLUMNS", "80")
    long_name = "restart the payment gateway workers one by one and wait for each to report healthy again"
    project.inventory("a-very-long-host-name-in-a-very-long-domain.eu-west-1.compute.internal ansible_connection=local\n")
    project.runbook("long", f"hosts: all\nsteps:\n  - name: {long_name}\n    shell: 'echo {'x' * 150}'\n")
    assert project.exec("long").exit_code == 0
    res = project.cli("audit", "show", "latest")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    joined = " ".join(" ".join(line.split()) for line in lines)
    assert long_name in joined  # wrapped, not lost
    assert "a-very-long-host-name-i…" in res.stdout  # a capped field says it was cut


def test_a_run_that_cannot_start_still_gives_ci_a_junit_report(project: Project) -> None:
    project.runbook("bad", "hosts: localhost\nsteps:\n  - shel: x\n")
    res = project.exec("bad", "--output", "junit")
    assert res.exit_code == 2
    root = check_junit(res.stdout)
    assert root.attrib["errors"] == "1" and "unknown module 'shel'" in res.stdout


@pytest.mark.parametrize("args", [["doc", "--list"], ["schema"], ["doc", "postgres.backup"]])
def test_a_reader_that_stops_early_is_no_internal_error(project: Project, args: list[str]) -> None:
    """`runbook ... | head -1`: the pipe closes after one line; runbook leaves quietly."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = f"{sys.executable} -m runbook {' '.join(args)} | head -c 10 >/dev/null"
    # many copies of the output, so the writer is still writing when `head` is gone
    res = subprocess.run(["bash", "-c", f"set -o pipefail; for i in 1 2 3 4 5 6 7 8; do {cmd} || exit $?; done"],
                         env=env, cwd=project.root, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr, res.stderr
