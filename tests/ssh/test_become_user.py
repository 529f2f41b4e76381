"""become_user / become_method / become_flags over real SSH with a real sudo and su: the login user
``rbtest`` (sudo with a password), a second login user ``rbfree`` (sudo without one) and a target
user ``rbtarget`` (su with its own password). They exist only inside their sshd's mount namespace.

Every command test runs in both modes (persistent remote shell and one exec channel per command);
the passwords never show in output, errors or the host's process list."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from runbook.actions.commands import Command
from runbook.errors import RunbookError
from runbook.model.become import Become
from tests.fixtures.sshd import write_inventory
from tests.ssh.conftest import spec_for
from tests.ssh.test_engine import exec_args, run_cli
from tests.ssh.users import OtherUser, user_overlay

pytestmark = [
    pytest.mark.slow,
    pytest.mark.ssh,
    pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo is not installed"),
]

TARGET = OtherUser("rbtarget", 4343, "Target-pw 'x\"$y")  # su needs the target's password
FREE = OtherUser("rbfree", 4444, "Free-pw-4444")  # sudo NOPASSWD


@pytest.fixture
def lab(sshd_factory, ssh_lab, tmp_path):
    user = user_overlay(
        ssh_lab.authorized_keys.read_text(),
        others=(TARGET, FREE),
        sudoers="rbtest ALL=(ALL:ALL) ALL\nrbfree ALL=(ALL:ALL) NOPASSWD: ALL",
    )
    try:
        host = sshd_factory("becomer", binds=user.binds)
        kh = tmp_path / "known_hosts"
        kh.write_text(host.known_hosts_line())
        yield user, host, kh
    finally:
        shutil.rmtree(user.dir, ignore_errors=True)


def login(connect, ssh_lab, lab, mode, name="rbtest", **spec_kw):
    _, host, kh = lab
    return connect(spec=spec_for(host, ssh_lab, user=name, **spec_kw), mode=mode, known_hosts=str(kh))


def as_(command: Command, **become) -> Command:
    return command.as_user(Become(**become))


def test_sudo_to_another_user_with_a_password(connect, ssh_lab, lab, mode):
    user, _, _ = lab
    t = login(connect, ssh_lab, lab, mode)
    cmd = Command.shell("id -un; cat; echo $X", become=True, stdin=b"in\n", env={"X": "x"})
    r = t.run(as_(cmd, user="rbtarget", password=user.password))
    assert (r.rc, r.stdout) == (0, "rbtarget\nin\nx\n"), r.stderr
    assert user.password not in r.stdout + r.stderr


def test_sudo_without_a_password_rule_keeps_stdin_intact(connect, ssh_lab, lab, mode):
    t = login(connect, ssh_lab, lab, mode, name=FREE.name)
    r = t.run(as_(Command.shell("id -un; cat", become=True, stdin=b"line1\nline2\n"), user="rbtarget"))
    assert (r.rc, r.stdout) == (0, "rbtarget\nline1\nline2\n"), r.stderr
    # a password given but not needed is not fed to the command
    r = t.run(as_(Command.shell("cat", become=True, stdin=b"data\n"), user="nobody", password="unused-pw"))
    assert (r.rc, r.stdout) == (0, "data\n"), r.stderr


def test_su_with_the_target_users_password(connect, ssh_lab, lab, mode):
    t = login(connect, ssh_lab, lab, mode)
    cmd = Command.shell("id -un; cat; echo $X", become=True, stdin=b"in 1\nin 2\n", env={"X": "x y"})
    r = t.run(as_(cmd, user=TARGET.name, method="su", password=TARGET.password))
    assert (r.rc, r.stdout) == (0, f"{TARGET.name}\nin 1\nin 2\nx y\n"), r.stderr
    assert TARGET.password not in r.stdout + r.stderr
    r = t.run(
        as_(Command.exec(["id", "-un"], become=True), user=TARGET.name, method="su", password=TARGET.password)
    )
    assert r.stdout == f"{TARGET.name}\n", r.stderr


def test_su_with_a_wrong_password_fails_without_echo(connect, ssh_lab, lab, mode):
    t = login(connect, ssh_lab, lab, mode)
    try:
        r = t.run(
            as_(Command.shell("id -un", become=True), user=TARGET.name, method="su", password="Wrong pw 1"),
            timeout=60,
        )
    except RunbookError as exc:
        assert "Wrong pw 1" not in str(exc)
        return
    assert r.rc != 0 and r.stdout == "" and "Wrong pw 1" not in r.stderr


def test_su_without_a_password_does_not_eat_the_commands_stdin(connect, ssh_lab, lab, mode):
    t = login(connect, ssh_lab, lab, mode, name="root")
    r = t.run(as_(Command.shell("id -un; cat", become=True, stdin=b"kept\n"), user=TARGET.name, method="su"))
    assert (r.rc, r.stdout) == (0, f"{TARGET.name}\nkept\n"), r.stderr


@pytest.mark.parametrize(
    ("become", "script", "expect"),
    [
        ({"user": TARGET.name, "flags": "-g rbtest"}, "id -un; id -gn", f"{TARGET.name}\nrbtest\n"),
        ({"user": TARGET.name, "method": "su", "flags": "-l"}, "pwd", None),
    ],
    ids=["sudo-group-flag", "su-login-flag"],
)
def test_become_flags_are_passed_as_words(connect, ssh_lab, lab, become, script, expect):
    user, _, _ = lab
    t = login(connect, ssh_lab, lab, "persistent")
    pw = TARGET.password if become.get("method") == "su" else user.password
    r = t.run(as_(Command.shell(script, become=True), password=pw, **become))
    assert r.rc == 0, r.stderr
    assert r.stdout == (expect or f"{user.dir}/home-{TARGET.name}\n")


@pytest.mark.parametrize("method", ["sudo", "su"])
def test_files_are_written_by_and_belong_to_the_become_user(connect, ssh_lab, lab, mode, method):
    user, _, _ = lab
    t = login(connect, ssh_lab, lab, mode)
    d = Path(f"/tmp/runbook-become-{uuid.uuid4().hex[:8]}")
    d.mkdir(mode=0o777)
    d.chmod(0o777)
    priv = Become(TARGET.name, method, "", TARGET.password if method == "su" else user.password)
    try:
        t.write_file(f"{d}/f.txt", b"as target\n", mode=0o640, become=priv)
        st = os.stat(d / "f.txt")
        assert (st.st_uid, st.st_mode & 0o777) == (TARGET.uid, 0o640)
        assert t.read_file(f"{d}/f.txt", become=priv) == b"as target\n"
        assert t.stat(f"{d}/f.txt", become=priv).owner == TARGET.name
        (d / "root-only").write_text("x")
        os.chmod(d / "root-only", 0o600)
        with pytest.raises(OSError, match="cannot read"):  # the target's permissions, not root's
            t.read_file(f"{d}/root-only", become=priv)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_the_password_is_not_in_the_hosts_process_list(connect, ssh_lab, lab, mode):
    """While the su'd command runs, no process on the host has the password in its argv."""
    t = login(connect, ssh_lab, lab, mode)
    marker = uuid.uuid4().hex
    result = {}

    def run():
        result["r"] = t.run(
            as_(
                Command.shell(f"sleep 2; echo {marker}", become=True),
                user=TARGET.name,
                method="su",
                password=TARGET.password,
            )
        )

    th = threading.Thread(target=run)
    th.start()
    seen = ""
    for _ in range(15):
        seen += subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        th.join(0.1)
    th.join(30)
    assert result["r"].stdout == f"{marker}\n", result["r"].stderr
    assert TARGET.password not in seen and "Target-pw" not in seen


def test_runbook_become_user_over_ssh(ssh_lab, lab, tmp_path):
    """The CLI end to end: step keyword > runbook default > inventory variables; plan shows the
    real become line; the copy ends up owned by the become user."""
    user, host, kh = lab
    out = Path(f"/tmp/runbook-become-{uuid.uuid4().hex[:8]}")  # a directory every user can reach
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    inv = write_inventory(
        tmp_path / "inv.ini",
        [host],
        ssh_lab.key,
        user="rbtest",
        host_vars={
            host.name: {"ansible_become_password": f"'{user.password}'", "ansible_become_user": "nobody"}
        },
    )
    rb = tmp_path / "who.yml"
    rb.write_text(
        f"""name: who
hosts: web
become_user: {FREE.name}
steps:
  - name: runbook default
    shell: id -un
    become: true
  - name: step keyword
    shell: id -un
    become: true
    become_user: {TARGET.name}
  - name: su with the target's password
    shell: id -un
    become: true
    become_user: {TARGET.name}
    become_method: su
    vars: {{ansible_become_password: "{{{{ target_pw }}}}"}}
  - name: owned file
    copy: {{dest: "{out}/by-target.txt", content: "hi\\n", mode: "0640"}}
    become: true
    become_user: {TARGET.name}
"""
    )
    extra = ["-e", f'{{"target_pw": "{TARGET.password.replace(chr(34), chr(92) + chr(34))}"}}']
    plan = ["plan", str(rb), "-i", str(inv), "--output", "json", "--known-hosts", str(kh), *extra]
    rc, doc, err = run_cli(plan, tmp_path)
    assert rc == 0, err
    shown = [c["summary"] for s in doc["hosts"][host.name]["steps"] for c in s.get("planned", [])]
    assert f"sudo -u {FREE.name} id -un" in shown
    assert f"sudo -u {TARGET.name} id -un" in shown
    assert f"su {TARGET.name} -c 'id -un'" in shown
    rc, doc, err = run_cli(exec_args(rb, inv, kh, tmp_path, *extra), tmp_path)
    assert rc == 0, (
        err,
        [
            {k: s.get(k) for k in ("name", "outcome", "msg", "stderr")}
            for s in doc["hosts"][host.name]["steps"]
        ],
    )
    steps = doc["hosts"][host.name]["steps"]
    assert [s["stdout"] for s in steps[:3]] == [f"{FREE.name}\n", f"{TARGET.name}\n", f"{TARGET.name}\n"]
    st = os.stat(out / "by-target.txt")
    assert (st.st_uid, st.st_mode & 0o777) == (TARGET.uid, 0o640)
    audit = "".join(p.read_text(errors="replace") for p in (tmp_path / "audit").rglob("*") if p.is_file())
    shutil.rmtree(out, ignore_errors=True)
    for blob in (err, str(doc), audit):
        assert user.password not in blob and TARGET.password not in blob
