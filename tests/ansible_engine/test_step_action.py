"""runbook.core.step runs runbook step kinds through Ansible's connection, with their snapshots and
undo: locally (-c local) and over real sshd with host keys checked against known_hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.sshd import SshLab

pytestmark = pytest.mark.slow

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: write the release
      runbook.core.step:
        kind: copy
        args: {{content: "v2\\n", dest: "{dest}", mode: "0640"}}
      register: release
    - name: read it back with a runbook shell step
      runbook.core.step: {{kind: shell, args: "cat {dest}"}}
      register: shown
    - name: undo the release from its snapshot
      runbook.core.step:
        kind: copy
        args: {{content: "v2\\n", dest: "{dest}", mode: "0640"}}
        undo: true
        snapshot: "{{{{ release.runbook_snapshot }}}}"
      register: undone
    - name: keep what was registered
      ansible.builtin.copy:
        content: "{{{{ {{'release': release, 'shown': shown, 'undone': undone}} | to_json }}}}"
        dest: "{out}"
      delegate_to: localhost
"""


def _run(ansible, tmp_path: Path, dest: str, inventory: str, *extra: str) -> dict:
    out = tmp_path / "registered.json"
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK.format(dest=dest, out=out))
    ansible().playbook(pb, inventory, *extra)
    return json.loads(out.read_text())


def test_step_snapshot_and_undo_locally(tmp_path: Path, ansible) -> None:
    dest = tmp_path / "RELEASE"
    dest.write_text("v1\n")
    dest.chmod(0o600)
    inv = tmp_path / "inv"
    inv.write_text("localhost ansible_connection=local\n")
    reg = _run(ansible, tmp_path, str(dest), str(inv))
    assert reg["release"]["changed"] is True and reg["release"]["runbook_kind"] == "copy"
    snap = reg["release"]["runbook_snapshot"]
    assert snap["existed"] is True and snap["path"] == str(dest) and snap["mode"] == "0600"
    assert reg["shown"]["stdout"] == "v2\n" and reg["shown"]["rc"] == 0
    assert reg["undone"]["changed"] is True and not reg["undone"]["failed"]
    assert dest.read_text() == "v1\n" and (dest.stat().st_mode & 0o777) == 0o600


def test_failure_is_the_tasks_with_a_message_and_check_mode_changes_nothing(tmp_path: Path, ansible) -> None:
    dest = tmp_path / "f"
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - runbook.core.step: {{kind: copy, args: {{content: x, dest: '{dest}'}}}}\n"
        "    - runbook.core.step: {kind: shell, args: 'echo out; exit 3'}\n"
    )
    run = ansible()
    res = run.playbook(pb, "localhost,", "-c", "local", "--check", "--diff")
    assert not dest.exists()  # check mode: the copy is planned, not done
    res = run.playbook(pb, "localhost,", "-c", "local", check=False)
    assert res.returncode == 2
    assert dest.read_text() == "x"
    assert "non-zero return code 3" in res.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - runbook.core.step: {kind: no.such}\n"
    )
    res = run.playbook(bad, "localhost,", "-c", "local", check=False)
    assert res.returncode == 2 and "unknown runbook step kind 'no.such'" in res.stdout


def _ssh_inventory(tmp_path: Path, lab: SshLab, known_hosts: Path) -> Path:
    h = lab.hosts[0]
    inv = tmp_path / "ssh-inv"
    inv.write_text(
        f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user=root "
        f"ansible_ssh_private_key_file={lab.key} "
        f"ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes'\n"
    )
    return inv


def test_step_over_sshd_honours_known_hosts(tmp_path: Path, ansible, ssh_lab: SshLab) -> None:
    dest = tmp_path / "remote-RELEASE"  # the sshd fixture's hosts share this machine's filesystem
    dest.write_text("v1\n")
    inv = _ssh_inventory(tmp_path, ssh_lab, ssh_lab.known_hosts)
    reg = _run(ansible, tmp_path, str(dest), str(inv))
    assert reg["release"]["changed"] is True and reg["shown"]["stdout"] == "v2\n"
    assert reg["undone"]["changed"] is True and dest.read_text() == "v1\n"

    # a host whose key is not known: Ansible's ssh refuses, the step never runs (a fresh control
    # path: the first run's ControlPersist master would otherwise carry the new run past the check)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    inv = _ssh_inventory(tmp_path, ssh_lab, empty)
    pb = tmp_path / "pb.yml"
    res = ansible(ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / "cp-fresh")).playbook(pb, str(inv), check=False)
    assert res.returncode == 4, res.stdout  # unreachable (not failed): Ansible's own verdict
    assert "Host key verification failed" in res.stdout + res.stderr
    assert dest.read_text() == "v1\n"


def test_snapshots_are_durable_before_the_change_or_nothing_changes(tmp_path: Path, ansible) -> None:
    dest = tmp_path / "conf"
    dest.write_text("before\n")
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: localhost\n  gather_facts: false\n  vars: {runbook_run_id: r1}\n  tasks:\n"
        f"    - runbook.core.step: {{kind: copy, args: {{content: after, dest: '{dest}'}}}}\n"
    )
    snaps = tmp_path / "snaps"
    ansible(RUNBOOK_SNAPSHOT_DIR=str(snaps)).playbook(pb, "localhost,", "-c", "local")
    (saved,) = (snaps / "r1" / "localhost").glob("*.json")
    assert json.loads(saved.read_text())["content_b64"] == "YmVmb3JlCg=="  # "before\n"
    assert (saved.stat().st_mode & 0o777) == 0o600 and dest.read_text() == "after"

    # the snapshot cannot be saved (a file where the directory must be): the change is not made
    dest.write_text("before\n")
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    res = ansible(RUNBOOK_SNAPSHOT_DIR=str(blocked)).playbook(pb, "localhost,", "-c", "local", check=False)
    assert res.returncode == 2 and "snapshot not saved, nothing changed" in res.stdout
    assert dest.read_text() == "before\n"


def test_a_step_with_privilege_uses_the_tasks_ansible_become(tmp_path: Path, ansible) -> None:
    import shutil

    if shutil.which("sudo") is None:
        pytest.skip("sudo not installed")
    out = tmp_path / "who.json"
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - runbook.core.step: {kind: shell, args: 'id -un'}\n"
        "      become: true\n      become_user: nobody\n      register: who\n"
        "    - runbook.core.step: {kind: shell, args: 'id -un'}\n      register: me\n"
        f"    - copy: {{content: '{{{{ [who.stdout, me.stdout] | to_json }}}}', dest: '{out}'}}\n"
    )
    ansible().playbook(pb, "localhost,", "-c", "local")
    import getpass

    assert json.loads(out.read_text()) == ["nobody\n", f"{getpass.getuser()}\n"]


def test_the_project_dir_variable_is_rendered_like_any_variable(tmp_path: Path, ansible, monkeypatch) -> None:
    """``runbook_project_dir`` may be a template (here an env lookup, as AWX job templates set it): the
    step finds the runbook's templates/ there, not in a directory named after the template text."""
    project = tmp_path / "project"
    (project / "templates").mkdir(parents=True)
    (project / "templates" / "app.conf.j2").write_text("port={{ port }}\n")
    dest = tmp_path / "app.conf"
    pb = tmp_path / "elsewhere" / "pb.yml"
    pb.parent.mkdir()
    pb.write_text(
        "- hosts: localhost\n  gather_facts: false\n"
        "  vars: {port: 8080, runbook_project_dir: \"{{ lookup('env', 'APP_PROJECT') }}\"}\n  tasks:\n"
        f"    - runbook.core.step: {{kind: template, args: {{src: app.conf.j2, dest: '{dest}'}}}}\n"
    )
    monkeypatch.setenv("APP_PROJECT", str(project))
    monkeypatch.delenv("RUNBOOK_PROJECT_DIR", raising=False)
    res = ansible().playbook(pb, "localhost,", "-c", "local")
    assert res.returncode == 0, res.stdout
    assert dest.read_text() == "port=8080\n"
