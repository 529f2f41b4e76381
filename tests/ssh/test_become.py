"""A non-root login user (it exists only inside its sshd's mount namespace, see user_overlay) and
become via sudo with a password: the password must work and must never show anywhere."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from runbook.actions.commands import Command
from runbook.errors import RunbookError
from tests.ssh.conftest import spec_for
from tests.ssh.users import user_overlay

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

HAVE_SUDO = shutil.which("sudo") is not None


@pytest.fixture
def user_host(sshd_factory, ssh_lab, tmp_path):
    user = user_overlay(ssh_lab.authorized_keys.read_text())
    try:
        host = sshd_factory("nonroot", binds=user.binds)
        kh = tmp_path / "known_hosts"
        kh.write_text(host.known_hosts_line())
        yield user, host, kh
    finally:
        shutil.rmtree(user.dir, ignore_errors=True)


def _transport(connect, ssh_lab, user, host, kh, mode="persistent", **spec_kw):
    spec = spec_for(host, ssh_lab, user=user.name, **spec_kw)
    return connect(spec=spec, mode=mode, known_hosts=str(kh))


def test_password_login(connect, ssh_lab, sshd_factory, tmp_path):
    """ansible_password: no key at all, password authentication (and the password in no message)."""
    user = user_overlay(ssh_lab.authorized_keys.read_text())
    try:
        host = sshd_factory("pwlogin", binds=user.binds, extra_config="PasswordAuthentication yes")
        kh = tmp_path / "kh"
        kh.write_text(host.known_hosts_line())
        spec = spec_for(host, ssh_lab, user=user.name, private_key_file=None, password=user.password)
        t = connect(spec=spec, known_hosts=str(kh), allow_agent=False)
        assert t.run(Command.shell("id -un")).stdout == f"{user.name}\n"
        bad = spec_for(host, ssh_lab, name="bad", user=user.name, private_key_file=None, password="Nope-123")
        with pytest.raises(RunbookError) as err:
            connect(spec=bad, known_hosts=str(kh), allow_agent=False)
        assert "password (rejected)" in str(err.value) and "Nope-123" not in str(err.value)
    finally:
        shutil.rmtree(user.dir, ignore_errors=True)


def test_non_root_login_and_permissions(connect, ssh_lab, user_host, mode):
    user, host, kh = user_host
    t = _transport(connect, ssh_lab, user, host, kh, mode)
    assert t.run(Command.shell("id -un")).stdout == f"{user.name}\n"
    secret = f"/tmp/runbook-root-only-{uuid.uuid4().hex[:6]}"
    with open(secret, "w") as fh:
        fh.write("x")
    os.chmod(secret, 0o600)
    try:
        with pytest.raises(OSError, match="cannot read"):
            t.read_file(secret)
        with pytest.raises(OSError, match="cannot write"):
            t.write_file("/root/runbook-should-not-exist", b"x")
        mine = f"{user.home}/mine.txt"
        t.write_file(mine, b"ok", mode=0o640)
        st = os.stat(mine)
        assert (st.st_uid, st.st_mode & 0o777) == (user.uid, 0o640)
    finally:
        os.unlink(secret)


@pytest.mark.skipif(HAVE_SUDO, reason="checks the message when sudo is missing")
def test_become_without_sudo_installed_says_so(connect, ssh_lab, user_host):
    user, host, kh = user_host
    t = _transport(connect, ssh_lab, user, host, kh, become_password="irrelevant")
    r = t.run(Command.shell("id -un", become=True))
    assert r.rc == 127 and "sudo" in r.stderr


@pytest.mark.skipif(not HAVE_SUDO, reason="sudo is not installed (add it to .ci/run)")
def test_become_with_password(connect, ssh_lab, user_host, mode):
    user, host, kh = user_host
    t = _transport(connect, ssh_lab, user, host, kh, mode, become_password=user.password)
    r = t.run(Command.shell("id -un; cat; echo $X", become=True, stdin=b"data-in\n", env={"X": "x"}))
    assert (r.rc, r.stdout) == (0, "root\ndata-in\nx\n"), r.stderr
    r = t.run(Command.shell("id -un", become=True, become_user="nobody"))
    assert r.stdout == "nobody\n"
    path = f"/tmp/runbook-become-{uuid.uuid4().hex[:6]}"
    try:
        t.write_file(path, b"as root", mode=0o600, become=True)
        assert os.stat(path).st_uid == 0
        assert t.read_file(path, become=True) == b"as root"
        assert t.stat(path, become=True).owner == "root"
    finally:
        if os.path.exists(path):
            os.unlink(path)
    for text in (r.stdout, r.stderr, repr(t.spec), str(Command.shell("x", become=True))):
        assert user.password not in text


@pytest.mark.skipif(not HAVE_SUDO, reason="sudo is not installed (add it to .ci/run)")
def test_wrong_become_password_fails_without_echo(connect, ssh_lab, user_host, mode):
    user, host, kh = user_host
    t = _transport(connect, ssh_lab, user, host, kh, mode, become_password="Wrong-Pw-123")
    try:
        r = t.run(Command.shell("id -un", become=True), timeout=60)
    except RunbookError as exc:  # acceptable too, as long as the password is not in it
        assert "Wrong-Pw-123" not in str(exc)
        return
    assert r.rc != 0 and r.stdout == ""
    assert "Wrong-Pw-123" not in r.stderr
