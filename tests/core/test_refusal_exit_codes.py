"""A run refused before it changed anything says so in its exit code: 3 (as a failed pre-flight),
never 1 ("a step failed and rollback succeeded"). Every refusal path: maintenance window closed,
deploy lock held, SSH host key unknown or changed, host unreachable, audit directory in use, state
directory not writable, approval declined. Once something changed, a failure is 1 again."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook.audit.sinks.jsonl import DirectoryLock
from tests.core.conftest import Project, free_port
from tests.core.test_guards import closed_window, hold_lock, lock_name  # noqa: F401 - fixture
from tests.fixtures.disks import read_only
from tests.fixtures.sshd import SshLab, ssh_lab, write_inventory  # noqa: F401 - session fixture

CHANGE = """
hosts: {hosts}
{extra}
steps:
  - name: change
    copy: {{content: "v2\\n", dest: "{{{{ t }}}}/{{{{ inventory_hostname }}}}.conf"}}
always:
  - name: notify
    shell: "echo {{{{ inventory_hostname }}}} {{{{ run.status }}}} >> {{{{ t }}}}/notified"
"""


@pytest.fixture
def t(tmp_path: Path) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    return d


def runbook(project: Project, hosts: str = "all", extra: str = "") -> None:
    project.runbook("rf", CHANGE.format(hosts=hosts, extra=extra))


def exec_json(project: Project, t: Path, *args: str, inv: Path | None = None) -> tuple[int, dict[str, Any]]:
    res = project.cli("exec", "rf", "-i", str(inv or project.root / "inv"), "-e", f"t={t}", "--output", "json", *args)
    assert "internal error" not in res.output, res.output
    return res.exit_code, json.loads(res.stdout)


def assert_refused(code: int, doc: dict[str, Any], t: Path, text: str) -> None:
    assert code == 3, doc
    assert doc["exit_code"] == 3
    assert text in json.dumps(doc), doc
    assert not list(t.glob("*.conf"))  # nothing was changed


def test_a_closed_window(project: Project, t: Path) -> None:
    runbook(project, "localhost", closed_window())
    code, doc = exec_json(project, t)
    assert_refused(code, doc, t, "outside the maintenance window")
    assert doc["status"] == "error" and "--force-window" in doc["errors"][0]["hint"]


def test_a_held_deploy_lock(project: Project, t: Path, lock_name: str) -> None:  # noqa: F811
    hold_lock(lock_name, os.getpid())
    runbook(project, "localhost", f"lock: {lock_name}")
    code, doc = exec_json(project, t)
    assert_refused(code, doc, t, f"deploy lock '{lock_name}' is held by run other-run")
    assert doc["status"] == "refused"
    assert (t / "notified").read_text() == "localhost refused\n"  # always: knows it was refused


def test_a_held_lock_on_one_host_after_others_changed_is_a_failure(
    project: Project, t: Path, lock_name: str  # noqa: F811
) -> None:
    project.inventory("web-a ansible_connection=local\nweb-b ansible_connection=local\n")
    hold_lock(lock_name, os.getpid(), host="web-b")
    runbook(project, "all", f"lock: {lock_name}\nrollback_scope: all")
    code, doc = exec_json(project, t)
    assert code == 1, doc  # web-a changed and was rolled back: not "nothing changed"
    assert doc["hosts"]["web-a"]["rollback"] == "ok" and not list(t.glob("*.conf"))


def test_an_unreachable_host(project: Project, t: Path) -> None:
    project.inventory(
        f"far ansible_host=127.0.0.1 ansible_port={free_port()} ansible_user=root ansible_ssh_timeout=5\n"
    )
    runbook(project)
    code, doc = exec_json(project, t)
    assert_refused(code, doc, t, "unreachable")
    assert doc["hosts"]["far"]["unreachable"]


def test_an_audit_directory_in_use(project: Project, t: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    audit = project.root / "audit"
    audit.mkdir()
    other = DirectoryLock(audit)
    other.acquire()  # another runbook process is writing this chain
    try:
        runbook(project, "localhost")
        code, doc = exec_json(project, t, "--audit-dir", str(audit))
    finally:
        other.release()
    assert_refused(code, doc, t, "audit directory is in use by another runbook process")
    assert "nothing was changed" in doc["message"]


def test_a_state_directory_that_cannot_be_written(project: Project, t: Path) -> None:
    runbook(project, "localhost")
    (project.root / ".runbook").mkdir()
    with read_only(project.root / ".runbook"):
        code, doc = exec_json(project, t)
    assert_refused(code, doc, t, "cannot write the run state")
    assert doc["status"] == "refused"


APPROVE = """
hosts: localhost
steps:
  - name: change
    copy: {{content: "v2\\n", dest: "{{{{ t }}}}/early.conf"}}
    when: {early}
  - name: go?
    approve: {{prompt: "Deploy?"}}
  - name: after
    copy: {{content: "v2\\n", dest: "{{{{ t }}}}/late.conf"}}
"""


def test_an_approval_declined_before_any_change(project: Project, t: Path) -> None:
    project.runbook("rf", APPROVE.format(early="false"))
    code, doc = exec_json(project, t)  # no terminal, no --yes: nobody approves
    assert_refused(code, doc, t, "no terminal to ask and --yes not given")


def test_an_approval_declined_after_a_change_rolls_back_and_exits_1(project: Project, t: Path) -> None:
    project.runbook("rf", APPROVE.format(early="true"))
    code, doc = exec_json(project, t)
    assert code == 1 and doc["status"] == "rolled_back", doc
    assert not list(t.glob("*.conf"))


def test_the_exit_codes_are_documented() -> None:
    from click.testing import CliRunner

    from runbook.cli.main import cli

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    help_text = CliRunner().invoke(cli, ["exec", "--help"]).output
    for text in (readme, help_text):
        assert "refused before any change" in text
        assert "5" in text and "audit trail or the run state could not be written" in " ".join(text.split())


# ------------------------------------------------------------------------------ over real SSH
@pytest.fixture
def ssh_inv(ssh_lab: SshLab, tmp_path: Path) -> Iterator[tuple[Path, Any]]:  # noqa: F811
    host = ssh_lab.hosts[0]
    yield write_inventory(tmp_path / "ssh.ini", [host], ssh_lab.key), host


@pytest.mark.slow
@pytest.mark.ssh
def test_an_unknown_host_key(project: Project, t: Path, ssh_inv: tuple[Path, Any], tmp_path: Path) -> None:
    inv, _host = ssh_inv
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    runbook(project)
    code, doc = exec_json(project, t, "--known-hosts", str(kh), inv=inv)
    assert_refused(code, doc, t, "SHA256:")
    assert kh.read_text() == ""


@pytest.mark.slow
@pytest.mark.ssh
def test_a_changed_host_key(
    project: Project, t: Path, ssh_inv: tuple[Path, Any], ssh_lab: SshLab, tmp_path: Path  # noqa: F811
) -> None:
    inv, host = ssh_inv
    kh = tmp_path / "known_hosts"
    kh.write_text(ssh_lab.hosts[1].known_hosts_line(name=host.known_hosts_name))  # another key
    runbook(project)
    code, doc = exec_json(project, t, "--known-hosts", str(kh), "--trust-new-hosts", inv=inv)
    assert_refused(code, doc, t, "SHA256:")
