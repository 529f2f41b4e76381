"""Output: the recap table, one JSON document with --output json, JUnit XML for CI, and the audit
file a real run leaves behind."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.core.conftest import Project

MIXED = """
hosts: all
steps:
  - name: say hi
    debug: {msg: hi}
  - name: write
    copy: {content: "x", dest: "{{ out }}/{{ inventory_hostname }}.txt"}
  - name: not this time
    debug: {msg: skipped}
    when: false
  - name: boom
    shell: "echo bad output; echo worse >&2; exit 4"
    when: inventory_hostname == 'h2'
"""


@pytest.fixture
def mixed(project: Project, tmp_path: Path) -> tuple[str, ...]:
    project.inventory("h1 ansible_connection=local\nh2 ansible_connection=local\n")
    project.runbook("mixed", MIXED)
    return ("-e", f"out={tmp_path}")


def test_recap_counts_ok_changed_failed_skipped_rolled_back(project: Project, mixed: tuple[str, ...]) -> None:
    res = project.exec("mixed", *mixed)
    assert res.exit_code == 1
    out = res.stdout
    header = next(line for line in out.splitlines() if "rolled back" in line and "host" in line)
    assert header.split("┃")[1:] and [c.strip() for c in header.split("┃")] == [
        "host",
        "ok",
        "changed",
        "failed",
        "skipped",
        "rolled back",
        "unreachable",
    ]
    rows = {
        cells[0]: cells[1:]
        for line in out.splitlines()
        if "│" in line
        for cells in [[c.strip() for c in line.split("│")]]
    }
    assert rows["h1"] == ["1", "1", "0", "2", "0", "0"]  # boom is skipped on h1
    assert rows["h2"] == ["1", "1", "1", "1", "1", "0"]
    assert "rolled_back (exit 1)" in out
    assert "h2: step 'boom' failed: non-zero return code 4" in out
    assert "stdout: bad output" in out and "stderr: worse" in out


def test_json_is_one_document_on_stdout(project: Project, mixed: tuple[str, ...]) -> None:
    res = project.exec("mixed", *mixed, "--output", "json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)  # the whole of stdout is exactly one JSON document
    assert doc["status"] == "rolled_back" and doc["exit_code"] == 1 and doc["dry_run"] is False
    assert doc["runbook"] == "mixed"
    assert set(doc["hosts"]) == {"h1", "h2"}
    h2 = doc["hosts"]["h2"]
    assert h2["stats"] == {
        "ok": 1,
        "changed": 1,
        "failed": 1,
        "skipped": 1,
        "rolled_back": 1,
        "unreachable": 0,
    }
    boom = project.steps(doc, "h2")["boom"]
    assert boom["outcome"] == "failed" and boom["rc"] == 4
    assert boom["stdout"] == "bad output\n" and boom["stderr"] == "worse\n"
    assert boom["command"] == "echo bad output; echo worse >&2; exit 4"
    assert [s["phase"] for s in h2["steps"]][-1] == "rollback"


def test_json_with_verbose_keeps_progress_off_stdout(project: Project, mixed: tuple[str, ...]) -> None:
    res = project.exec("mixed", *mixed, "--output", "json", "-v")
    json.loads(res.stdout)
    assert "RUNBOOK mixed" in res.stderr


def test_junit_is_valid_xml_with_failures(project: Project, mixed: tuple[str, ...], tmp_path: Path) -> None:
    junit_file = tmp_path / "report.xml"
    res = project.exec("mixed", *mixed, "--output", "junit", "--junit-file", str(junit_file))
    assert res.exit_code == 1
    root = ET.fromstring(res.stdout.encode())
    assert ET.fromstring(junit_file.read_bytes()).tag == "testsuites"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"mixed@h1", "mixed@h2"}
    assert suites["mixed@h1"].get("failures") == "0"
    assert suites["mixed@h2"].get("failures") == "1"
    assert suites["mixed@h2"].get("skipped") == "1"
    failure = next(c for c in suites["mixed@h2"].iter("testcase") if c.get("name") == "boom").find("failure")
    assert failure is not None
    assert failure.get("message") == "non-zero return code 4"
    assert "bad output" in (failure.text or "")


def test_success_exit_0_and_recap(project: Project) -> None:
    project.runbook("ok", "hosts: localhost\nsteps:\n  - debug: {msg: fine}\n")
    res = project.exec("ok")
    assert res.exit_code == 0
    assert "success (exit 0)" in res.stdout


def test_a_real_run_writes_an_audit_file(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RUNBOOK_AUDIT")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no signing key of the operator's
    project.runbook("ok", "hosts: localhost\nsteps:\n  - debug: {msg: fine}\n")
    res = project.exec("ok", "--output", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    audit = Path(doc["audit"])
    assert audit.exists() and audit.parent == Path("audit")
    records = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    assert records and records[0]["run_id"] == doc["run_id"]
    events = [r.get("event") for r in records]
    assert "run.start" in events and "run.end" in events
    res = project.exec("ok")
    assert "audit: audit/" in res.stdout


def _diff_texts() -> list[str]:
    import random

    rng = random.Random(14)
    pieces = ["+", "-", " ", "@@ -1,3 +1,4 @@", "--- a/x", "+++ b/x", "\t", "  ", "x" * 130, "[bold]no[/]",
              ":smile:", "\\[x]", "日本語", "🎉", "é", "{{ a }}", "a\tb\tc", "", "\\", "#"]  # fmt: skip
    texts = ["", "\n", "\n\n", "+a", "+a\n", "\tx\n", "\ufeffnot first\n" * 2]
    for _ in range(300):
        lines = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 5))) for _ in range(rng.randint(0, 6))]
        texts.append("\n".join(lines) + rng.choice(["", "\n", "\n\n"]))
    return texts


@pytest.mark.parametrize("width", [20, 80])
def test_a_diff_in_a_log_prints_as_richs_syntax_would(width: int) -> None:
    """A log without colours (a pipe, NO_COLOR) prints diffs without pygments, byte for byte as
    rich's Syntax prints them there."""
    import io
    import sys

    from rich.console import Console
    from rich.syntax import Syntax

    from runbook.cli.console import ConsoleRenderer

    def log(f: io.StringIO) -> Console:
        c = Console(file=f, highlight=False, color_system=None, width=width)
        c.soft_wrap = True  # as make_console makes it for a log
        return c

    for text in _diff_texts():
        ours, theirs = io.StringIO(), io.StringIO()
        renderer = ConsoleRenderer(log(ours))
        renderer._diff(text)
        log(theirs).print(Syntax(text, "diff", theme="ansi_dark", background_color="default", word_wrap=False))
        assert ours.getvalue() == theirs.getvalue(), repr(text)
    code = "import io, sys; from rich.console import Console; from runbook.cli.console import ConsoleRenderer\n"
    code += "c = Console(file=io.StringIO(), color_system=None); c.soft_wrap = True\n"
    code += "ConsoleRenderer(c)._diff('+a\\n'); print('pygments' in sys.modules)"
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
