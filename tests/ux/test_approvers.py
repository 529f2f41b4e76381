"""Approvals record who approved; an `approve` step may need several distinct people (seed 003's
go/no-go sign-off) and `audit show` names them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.execute.approval import Identity, decide
from tests.core.conftest import Project

SIGNOFF = """
name: go-no-go
hosts: localhost
steps:
  - name: Go/No-Go sign-off
    approve:
      prompt: "GO for v2.2.0?"
      approvers: {approvers}
  - name: deploy
    shell: "echo deployed"
"""


def records(root: Path) -> list[dict]:
    (run,) = sorted((root / "audit").glob("*.jsonl"))
    return [json.loads(line) for line in run.read_text().splitlines()]


def approval(root: Path) -> dict:
    (rec,) = [r for r in records(root) if r["event"] == "approval"]
    return rec


def test_named_approvers_each_recorded_and_shown(audited: Project) -> None:
    audited.runbook("go", SIGNOFF.format(approvers='["Alice Johnson", "Carol White", "David Brown"]'))
    res = audited.exec(
        "go", "--yes", "--approver", "Alice Johnson", "--approver", "carol white", "--approver", "David Brown"
    )
    assert res.exit_code == 0, res.output
    rec = approval(audited.root)
    assert rec["outcome"] == "approved"
    assert [a["name"] for a in rec["data"]["approvers"]] == ["Alice Johnson", "Carol White", "David Brown"]
    assert rec["data"]["required"] == 3
    show = audited.cli("audit", "show", "latest")
    assert "Alice Johnson" in show.output and "3 of 3" in show.output


def test_a_named_approver_missing_is_a_refusal_naming_them(audited: Project) -> None:
    audited.runbook("go", SIGNOFF.format(approvers='["Alice Johnson", "Carol White"]'))
    res, doc = audited.exec_json("go", "--yes", "--approver", "Alice Johnson")
    assert res.exit_code == 3
    step = audited.steps(doc)["Go/No-Go sign-off"]
    assert "Carol White" in step["msg"] and "--approver" in step["msg"]
    assert "deploy" not in audited.steps(doc) or audited.steps(doc)["deploy"]["outcome"] != "changed"
    assert approval(audited.root)["outcome"] == "denied"


def test_a_count_needs_that_many_distinct_people(audited: Project) -> None:
    audited.runbook("go", SIGNOFF.format(approvers="2"))
    res, doc = audited.exec_json("go", "--yes", "--approver", "alice", "--approver", "ALICE")
    assert res.exit_code == 3
    assert "needs 2 distinct approvers, got 1" in audited.steps(doc)["Go/No-Go sign-off"]["msg"]
    res, doc = audited.exec_json("go", "--yes", "--approver", "alice,bob")
    assert res.exit_code == 0
    assert audited.steps(doc)["Go/No-Go sign-off"]["msg"] == "approved by alice (--yes), bob (--yes)"


def test_the_approver_comes_from_the_environment_then_the_signing_key(
    audited: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    audited.runbook("go", SIGNOFF.format(approvers="1"))
    assert audited.cli("audit", "keygen", "--comment", "grace@ops-laptop").exit_code == 0
    _, doc = audited.exec_json("go", "--yes")
    assert audited.steps(doc)["Go/No-Go sign-off"]["msg"] == "approved by grace@ops-laptop (--yes)"
    assert approval(audited.root)["data"]["approvers"][0]["source"] == "signing key"
    monkeypatch.setenv("RUNBOOK_APPROVER", "Frank Wilson")
    _, doc = audited.exec_json("go", "--yes")
    assert audited.steps(doc)["Go/No-Go sign-off"]["msg"] == "approved by Frank Wilson (--yes)"


def test_a_default_approval_records_the_login(project: Project) -> None:
    project.runbook("go", SIGNOFF.format(approvers="1"))
    res, doc = project.exec_json("go", "--yes")
    assert res.exit_code == 0
    assert "@" in doc["hosts"]["localhost"]["steps"][0]["msg"]


def test_invalid_approvers_are_a_validation_error(project: Project) -> None:
    for bad in ("0", "[]", '["a", "a"]', '"two"', '[""]'):
        project.runbook("go", SIGNOFF.format(approvers=bad))
        res = project.cli("validate", "go")
        assert res.exit_code == 2, (bad, res.output)


# ------------------------------------------------------------------ at a terminal (the callbacks)
def test_at_a_terminal_each_of_several_approvers_types_a_distinct_name() -> None:
    names = iter(["alice", "Alice", "bob"])  # the second "Alice" is alice again: asked once more
    asked: list[str] = []
    confirmed: list[str] = []

    def ask(question: str, default: str) -> str:
        asked.append(default)
        return next(names)

    def confirm(question: str) -> bool:
        confirmed.append(question)
        return True

    d = decide({"approvers": 2}, "[web1] GO?", [Identity("alice", "signing key")], yes=False, confirm=confirm, ask_name=ask)
    assert d.ok and [a["name"] for a in d.approvers] == ["alice", "bob"]
    assert asked[0] == "alice"  # the operator's own identity is offered first
    assert confirmed == ["[web1] GO? -- approval of alice:", "[web1] GO? -- approval of bob:"]


def test_at_a_terminal_one_no_is_a_no() -> None:
    answers = iter([True, False])
    d = decide({"approvers": ["alice", "carol"]}, "GO?", [], yes=False, confirm=lambda q: next(answers))
    assert not d.ok and d.who == "declined by carol (approved so far: alice)"


def test_at_a_terminal_a_name_never_given_is_a_denial() -> None:
    d = decide({"approvers": 2}, "GO?", [], yes=False, confirm=lambda q: True, ask_name=lambda q, default: "")
    assert not d.ok and "gave no new name" in d.who


def test_without_a_terminal_nor_yes_nobody_approves() -> None:
    d = decide({}, "GO?", [Identity("alice", "--approver")], yes=False, confirm=None)
    assert not d.ok and "no terminal" in d.who


def _answer_on_a_terminal(args: list[str], answers: list[tuple[str, str]], cwd: Path) -> tuple[int, str]:
    """Run the real CLI on a pseudo-terminal; type each answer once its prompt text has appeared."""
    import os
    import pty
    import re
    import select
    import subprocess
    import sys

    from tests.core.conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONPATH")}
    env.update(TERM="xterm", PYTHONPATH=str(REPO), NO_COLOR="1")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runbook", *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    out, seen = b"", 0
    pending = list(answers)
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))
        if pending and pending[0][0] in text[seen:]:
            seen = text.index(pending[0][0], seen) + len(pending[0][0])
            os.write(master, pending.pop(0)[1].encode() + b"\r")
    code = proc.wait(timeout=60)
    os.close(master)
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))


def test_at_a_real_terminal_two_people_type_their_names(audited: Project) -> None:
    audited.runbook("go", SIGNOFF.format(approvers="2"))
    answers = [("approver 1 of 2, name", "Alice Johnson"), ("approval of Alice Johnson", "yes"),
               ("approver 2 of 2, name", "Carol White"), ("approval of Carol White", "yes")]  # fmt: skip
    code, out = _answer_on_a_terminal(["exec", "go", "-i", "inv"], answers, audited.root)
    assert code == 0, out
    assert [a["name"] for a in approval(audited.root)["data"]["approvers"]] == ["Alice Johnson", "Carol White"]
    assert {a["method"] for a in approval(audited.root)["data"]["approvers"]} == {"typed"}


def test_at_a_real_terminal_a_no_stops_the_run_before_any_change(audited: Project) -> None:
    audited.runbook("go", SIGNOFF.format(approvers='["Alice Johnson", "Carol White"]'))
    answers = [("approval of Alice Johnson", "yes"), ("approval of Carol White", "no")]
    code, out = _answer_on_a_terminal(["exec", "go", "-i", "inv"], answers, audited.root)
    assert code == 3, out
    assert approval(audited.root)["outcome"] == "denied"
    assert "declined by Carol White" in approval(audited.root)["data"]["approved_by"]


def test_a_single_approver_known_only_by_login_is_asked_their_name() -> None:
    asked: list[str] = []

    def ask(question: str, default: str) -> str:
        asked.append(default)
        return "Grace Miller"

    d = decide({}, "GO?", [Identity("root@vm", "login")], yes=False, confirm=lambda q: True, ask_name=ask)
    assert d.ok and d.approvers == [{"name": "Grace Miller", "source": "typed", "method": "typed"}]
    assert asked == ["root@vm"]
    # a name given by --approver, $RUNBOOK_APPROVER or the signing key is not asked again
    d = decide({}, "GO?", [Identity("grace", "signing key")], yes=False, confirm=lambda q: True, ask_name=ask)
    assert d.ok and d.approvers[0]["name"] == "grace" and len(asked) == 1
    # an empty answer keeps the login
    d = decide({}, "GO?", [Identity("root@vm", "login")], yes=False, confirm=lambda q: True, ask_name=lambda q, dflt: "")
    assert d.approvers[0]["name"] == "root@vm"
