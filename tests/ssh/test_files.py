"""read_file / stat / write_file over sftp (and through commands with become), against real sshd."""

from __future__ import annotations

import os
import pwd
import shutil
import uuid

import pytest

from runbook.actions.commands import Command
from runbook.errors import RunbookError

pytestmark = [pytest.mark.slow, pytest.mark.ssh]


@pytest.fixture
def rdir():
    """A scratch directory (the sshd hosts are this machine, so it is also local)."""
    d = f"/tmp/runbook-ssh-files-{uuid.uuid4().hex[:8]}"
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("become", [False, True], ids=["sftp", "become"])
def test_write_read_stat_roundtrip(connect, rdir, become):
    t = connect()
    path = f"{rdir}/sub/dir/app.conf"
    data = bytes(range(256)) * 100
    t.write_file(path, data, mode=0o600, become=become)
    assert t.read_file(path, become=become) == data
    st = t.stat(path, become=become)
    assert (st.exists, st.is_dir, st.mode, st.size, st.owner, st.group) == (
        True,
        False,
        0o600,
        len(data),
        "root",
        "root",
    )
    # replacing keeps the mode when none is given; no temp file is left behind
    t.write_file(path, b"v2", become=become)
    assert t.read_file(path, become=become) == b"v2"
    assert t.stat(path, become=become).mode == 0o600
    assert os.listdir(f"{rdir}/sub/dir") == ["app.conf"]
    # a new file without mode gets the umask default, like the local transport
    t.write_file(f"{rdir}/new", b"", become=become)
    assert t.stat(f"{rdir}/new").mode == 0o644


def test_write_is_atomic_rename(connect, rdir):
    """The file is replaced by a rename: a reader holding the old inode keeps the old content."""
    t = connect()
    path = f"{rdir}/f"
    t.write_file(path, b"old")
    ino = os.stat(path).st_ino
    with open(path, "rb") as held:
        t.write_file(path, b"new")
        assert held.read() == b"old"
    assert os.stat(path).st_ino != ino
    with open(path, "rb") as fh:
        assert fh.read() == b"new"


def test_secret_file_never_world_readable(connect, rdir):
    t = connect()
    t.write_file(f"{rdir}/seed", b"")  # create the directory
    t.write_file(f"{rdir}/secret", b"s3cret", mode=0o600)
    assert os.stat(f"{rdir}/secret").st_mode & 0o777 == 0o600


@pytest.mark.parametrize("become", [False, True], ids=["sftp", "become"])
def test_owner_and_group(connect, rdir, become):
    t = connect()
    path = f"{rdir}/owned"
    t.write_file(path, b"x", owner="nobody", group="nogroup", mode=0o640, become=become)
    st = os.stat(path)
    assert (st.st_uid, st.st_mode & 0o777) == (pwd.getpwnam("nobody").pw_uid, 0o640)
    s = t.stat(path)
    assert (s.owner, s.group) == ("nobody", "nogroup")
    # root replacing it without owner= keeps the owner
    t.write_file(path, b"y", become=become)
    assert os.stat(path).st_uid == pwd.getpwnam("nobody").pw_uid


def test_unknown_owner_is_a_clear_error(connect, rdir):
    t = connect()
    with pytest.raises(RunbookError, match="no user named 'no-such-user-xyz'"):
        t.write_file(f"{rdir}/x", b"x", owner="no-such-user-xyz")


@pytest.mark.parametrize("become", [False, True], ids=["sftp", "become"])
def test_missing_dir_and_link(connect, rdir, become):
    t = connect()
    assert t.read_file(f"{rdir}/missing", become=become) is None
    assert t.stat(f"{rdir}/missing", become=become).exists is False
    t.write_file(f"{rdir}/target", b"t")
    assert t.read_file(rdir, become=become) is None  # a directory reads as "no file"
    st = t.stat(rdir, become=become)
    assert st.exists and st.is_dir
    os.symlink(f"{rdir}/target", f"{rdir}/link")
    st = t.stat(f"{rdir}/link", become=become)
    assert st.exists and st.is_link  # lstat


def test_become_to_another_user(connect, rdir):
    """root -> nobody: through sudo if the host has it, else su (root needs no password)."""
    t = connect()
    os.makedirs(rdir, exist_ok=True)
    os.chmod(rdir, 0o777)
    r = t.run(Command.shell("id -un; echo $A", become=True, become_user="nobody", env={"A": "1"}))
    assert (r.rc, r.stdout) == (0, "nobody\n1\n")
    r = t.run(Command.shell("cat", become=True, become_user="nobody", stdin=b"in"))
    assert r.stdout == "in"
    r = t.run(Command.shell("id -un", become=True))  # root -> root: no sudo needed at all
    assert r.stdout == "root\n"
