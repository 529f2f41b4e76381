"""copy, template and file against real files: changed/unchanged, snapshots, exact undo, dry-run."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from tests.steps.support import Runner, tree_state

BLOB = bytes(range(256)) * 64 + b"\x00\xff\xfe not utf-8 \xc3\x28"


def mode_of(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


# ------------------------------------------------------------------------------------------- copy
def test_copy_content_creates_file_and_parents_and_undo_removes_them(rb: Runner, tmp_path: Path) -> None:
    dest = tmp_path / "new" / "deeper" / "app.conf"
    r = rb.run("copy", {"content": "a=1\n", "dest": str(dest), "mode": "0640"})
    assert r.outcome.ok and r.outcome.changed
    assert dest.read_bytes() == b"a=1\n" and mode_of(dest) == 0o640
    snap = r.snapshot
    assert snap["existed"] is False
    assert snap["created_dirs"] == [str(tmp_path / "new"), str(tmp_path / "new" / "deeper")]
    assert r.outcome.data["checksum"] == hashlib.sha1(b"a=1\n").hexdigest()

    again = rb.run("copy", {"content": "a=1\n", "dest": str(dest), "mode": "0640"})
    assert again.outcome.ok and not again.outcome.changed
    assert again.drive.snapshots == [] and again.drive.planned == []

    u = rb.undo("copy", {}, snap)
    assert u.outcome.ok and u.outcome.changed
    assert not (tmp_path / "new").exists()


def test_copy_binary_src_over_existing_file_and_undo_restores_bytes_and_mode(
    rb: Runner, tmp_path: Path
) -> None:
    (rb.project / "files").mkdir()
    (rb.project / "files" / "blob.bin").write_bytes(BLOB)
    dest = tmp_path / "blob.bin"
    old = b"old \x00 content\n"
    dest.write_bytes(old)
    dest.chmod(0o604)

    r = rb.run("copy", {"src": "blob.bin", "dest": str(dest), "mode": 0o600})
    assert r.outcome.ok and r.outcome.changed, r.outcome.msg
    assert dest.read_bytes() == BLOB and mode_of(dest) == 0o600
    snap = r.snapshot
    assert snap["existed"] is True
    assert base64.b64decode(snap["content_b64"]) == old
    assert snap["mode"] == "0604"
    assert snap["owner"] == pwd.getpwuid(os.getuid()).pw_name
    json.dumps(snap)  # the engine persists it

    assert not rb.run("copy", {"src": "blob.bin", "dest": str(dest), "mode": "0600"}).outcome.changed
    u = rb.undo("copy", {}, snap)
    assert u.outcome.ok and u.outcome.changed
    assert dest.read_bytes() == old and mode_of(dest) == 0o604
    assert not rb.undo("copy", {}, snap).outcome.changed  # undo twice is harmless


def test_copy_mode_only_change_is_a_change_and_is_undone(rb: Runner, tmp_path: Path) -> None:
    dest = tmp_path / "f"
    dest.write_bytes(b"same\n")
    dest.chmod(0o644)
    r = rb.run("copy", {"content": "same\n", "dest": str(dest), "mode": "u=rw,g=,o="})
    assert r.outcome.changed and mode_of(dest) == 0o600
    assert "attributes" in r.outcome.msg
    rb.undo("copy", {}, r.snapshot)
    assert mode_of(dest) == 0o644


def test_copy_into_directory_force_backup_and_link(rb: Runner, tmp_path: Path) -> None:
    (rb.project / "files").mkdir()
    (rb.project / "files" / "motd").write_text("hi\n")
    d = tmp_path / "etc"
    d.mkdir()
    r = rb.run("copy", {"src": "motd", "dest": str(d)})
    assert r.outcome.ok and (d / "motd").read_text() == "hi\n"
    assert r.outcome.data["dest"] == str(d / "motd")

    kept = rb.run("copy", {"content": "other\n", "dest": str(d / "motd"), "force": False})
    assert kept.outcome.ok and not kept.outcome.changed and (d / "motd").read_text() == "hi\n"

    b = rb.run("copy", {"content": "v2\n", "dest": str(d / "motd"), "backup": True})
    backup = Path(b.outcome.data["backup_file"])
    assert backup.read_text() == "hi\n" and (d / "motd").read_text() == "v2\n"

    target = tmp_path / "real.conf"
    target.write_text("real\n")
    (tmp_path / "link.conf").symlink_to(target)
    via = rb.run("copy", {"content": "through\n", "dest": str(tmp_path / "link.conf")})
    assert via.outcome.changed and target.read_text() == "through\n"
    assert (tmp_path / "link.conf").is_symlink()
    rb.undo("copy", {}, via.snapshot)
    assert target.read_text() == "real\n"


def test_copy_problems_are_named(rb: Runner, tmp_path: Path) -> None:
    r = rb.run("copy", {"src": "missing.txt", "dest": str(tmp_path / "x")})
    assert not r.outcome.ok and "missing.txt" in r.outcome.msg and "not found" in r.outcome.msg
    r = rb.run("copy", {"content": "x", "dest": str(tmp_path), "mode": "0644"})
    assert not r.outcome.ok and "is a directory" in r.outcome.msg
    r = rb.run("copy", {"content": "x", "dest": str(tmp_path / "y"), "mode": "rwx"})
    assert not r.outcome.ok and "mode 'rwx'" in r.outcome.msg
    assert not (tmp_path / "y").exists()


def test_copy_large_previous_content_is_backed_up_on_the_host(rb: Runner, tmp_path: Path) -> None:
    dest = tmp_path / "big.bin"
    big = os.urandom(1024) * (16 * 1024 + 1)  # just over 16 MiB
    dest.write_bytes(big)
    r = rb.run("copy", {"content": "small\n", "dest": str(dest)})
    snap = r.snapshot
    assert "content_b64" not in snap and Path(snap["backup"]).is_file()
    assert Path(snap["backup"]).parent == tmp_path / "backups"
    rb.undo("copy", {}, snap)
    assert dest.read_bytes() == big


# --------------------------------------------------------------------------------------- template
def test_template_renders_and_undo_restores(rb: Runner, tmp_path: Path) -> None:
    rb.vars.update(app_port=8000, workers=[1, 2])
    (rb.project / "templates").mkdir()
    (rb.project / "templates" / "app.conf.j2").write_text(
        "port={{ app_port }}\n{% for w in workers %}worker{{ w }}\n{% endfor %}"
    )
    dest = tmp_path / "app.conf"
    dest.write_text("port=1\n")
    dest.chmod(0o600)
    r = rb.run("template", {"src": "app.conf.j2", "dest": str(dest), "mode": "0644"})
    assert r.outcome.ok and r.outcome.changed
    assert dest.read_text() == "port=8000\nworker1\nworker2\n"
    assert not rb.run("template", {"src": "app.conf.j2", "dest": str(dest), "mode": "0644"}).outcome.changed
    rb.undo("template", {}, r.snapshot)
    assert dest.read_text() == "port=1\n" and mode_of(dest) == 0o600

    (rb.project / "templates" / "nl.j2").write_text("x={{ app_port }}\n")
    rb.run("template", {"src": "nl.j2", "dest": str(tmp_path / "nl")})
    assert (tmp_path / "nl").read_text() == "x=8000\n"  # the trailing newline survives


def test_template_errors_name_the_problem(rb: Runner, tmp_path: Path) -> None:
    (rb.project / "templates").mkdir()
    (rb.project / "templates" / "bad.j2").write_text("{{ nope_undefined }}\n")
    r = rb.run("template", {"src": "bad.j2", "dest": str(tmp_path / "out")})
    assert not r.outcome.ok and "nope_undefined" in r.outcome.msg and "bad.j2" in r.outcome.msg
    assert not (tmp_path / "out").exists()
    r = rb.run("template", {"src": "absent.j2", "dest": str(tmp_path / "out")})
    assert not r.outcome.ok and "absent.j2" in r.outcome.msg and "not found" in r.outcome.msg


# ------------------------------------------------------------------------------------------- file
def test_file_directory_create_idempotent_undo(rb: Runner, tmp_path: Path) -> None:
    d = tmp_path / "a" / "b" / "c"
    r = rb.run("file", {"path": str(d), "state": "directory", "mode": "0750"})
    assert r.outcome.changed and d.is_dir() and mode_of(d) == 0o750
    assert r.snapshot == {
        "path": str(d),
        "existed": False,
        "created_dirs": [str(tmp_path / "a"), str(d.parent)],
    }
    assert not rb.run("file", {"path": str(d), "state": "directory", "mode": "0750"}).outcome.changed
    u = rb.undo("file", {}, r.snapshot)
    assert u.outcome.ok and not (tmp_path / "a").exists()


def test_file_directory_mode_change_on_existing_and_undo(rb: Runner, tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    d.chmod(0o700)
    r = rb.run("file", {"path": str(d), "state": "directory", "mode": "0755"})
    assert r.outcome.changed and mode_of(d) == 0o755 and r.snapshot["mode"] == "0700"
    rb.undo("file", {}, r.snapshot)
    assert mode_of(d) == 0o700


def test_undo_refuses_to_remove_a_created_directory_that_is_no_longer_empty(
    rb: Runner, tmp_path: Path
) -> None:
    d = tmp_path / "made"
    r = rb.run("file", {"path": str(d), "state": "directory"})
    (d / "someone-elses.txt").write_text("data")
    u = rb.undo("file", {}, r.snapshot)
    assert not u.outcome.ok and "not empty" in u.outcome.msg and "by hand" in u.outcome.msg
    assert (d / "someone-elses.txt").exists()


def test_file_absent_on_a_file_and_undo(rb: Runner, tmp_path: Path) -> None:
    f = tmp_path / "secret.bin"
    f.write_bytes(BLOB)
    f.chmod(0o400)
    r = rb.run("file", {"path": str(f), "state": "absent"})
    assert r.outcome.changed and not f.exists()
    assert base64.b64decode(r.snapshot["content_b64"]) == BLOB
    assert "content_b64" not in r.outcome.data  # the bytes live in the snapshot only
    assert not rb.run("file", {"path": str(f), "state": "absent"}).outcome.changed
    rb.undo("file", {}, r.snapshot)
    assert f.read_bytes() == BLOB and mode_of(f) == 0o400


def test_file_absent_on_a_directory_tree_archives_and_undo_restores_it(rb: Runner, tmp_path: Path) -> None:
    root = tmp_path / "release"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "data.bin").write_bytes(BLOB)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "current").symlink_to("sub")
    (root / "sub").chmod(0o711)
    before = tree_state(root)
    r = rb.run("file", {"path": str(root), "state": "absent"})
    assert r.outcome.ok and r.outcome.changed and not root.exists()
    snap = r.snapshot
    assert snap["type"] == "directory" and Path(snap["backup"]).is_file()
    assert mode_of(Path(snap["backup"]).parent) == 0o700
    u = rb.undo("file", {}, snap)
    assert u.outcome.ok and u.outcome.changed
    assert tree_state(root) == before


def test_file_link_create_retarget_force_and_undo(rb: Runner, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    link = tmp_path / "current"
    r = rb.run("file", {"path": str(link), "state": "link", "src": str(tmp_path / "v1")})
    assert r.outcome.changed and os.readlink(link) == str(tmp_path / "v1")
    assert not rb.run(
        "file", {"path": str(link), "state": "link", "src": str(tmp_path / "v1")}
    ).outcome.changed
    r2 = rb.run("file", {"path": str(link), "state": "link", "src": str(tmp_path / "v2")})
    assert r2.outcome.changed and os.readlink(link) == str(tmp_path / "v2")
    assert r2.snapshot["link_target"] == str(tmp_path / "v1")
    rb.undo("file", {}, r2.snapshot)
    assert os.readlink(link) == str(tmp_path / "v1")
    rb.undo("file", {}, r.snapshot)
    assert not link.is_symlink()

    f = tmp_path / "plain"
    f.write_text("keep me\n")
    refused = rb.run("file", {"path": str(f), "state": "link", "src": "v1"})
    assert not refused.outcome.ok and "force: true" in refused.outcome.msg and f.read_text() == "keep me\n"
    forced = rb.run("file", {"path": str(f), "state": "link", "src": "v1", "force": True})
    assert forced.outcome.changed and f.is_symlink()
    rb.undo("file", {}, forced.snapshot)
    assert not f.is_symlink() and f.read_text() == "keep me\n"


def test_file_touch_and_state_file(rb: Runner, tmp_path: Path) -> None:
    f = tmp_path / "t" / "flag"
    r = rb.run("file", {"path": str(f), "state": "touch", "mode": "0600"})
    assert r.outcome.changed and f.exists() and mode_of(f) == 0o600
    rb.undo("file", {}, r.snapshot)
    assert not (tmp_path / "t").exists()

    missing = rb.run("file", {"path": str(tmp_path / "nope"), "state": "file"})
    assert not missing.outcome.ok and "does not exist" in missing.outcome.msg
    g = tmp_path / "g"
    g.write_text("x")
    g.chmod(0o644)
    r = rb.run("file", {"path": str(g), "mode": "0600"})  # state defaults to what the path is
    assert r.outcome.changed and mode_of(g) == 0o600 and g.read_text() == "x"
    rb.undo("file", {}, r.snapshot)
    assert mode_of(g) == 0o644


def test_file_recurse_modes_and_undo_per_entry(rb: Runner, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "x.sh").write_text("x")
    (root / "a" / "x.sh").chmod(0o755)
    (root / "a" / "b" / "y.txt").write_text("y")
    (root / "a" / "b" / "y.txt").chmod(0o666)
    (root / "link").symlink_to("a")
    before = tree_state(root)
    r = rb.run("file", {"path": str(root), "state": "directory", "recurse": True, "mode": "u=rwX,g=rX,o="})
    assert r.outcome.ok and r.outcome.changed, r.outcome.msg
    assert mode_of(root / "a") == 0o750 and mode_of(root / "a" / "x.sh") == 0o750
    assert mode_of(root / "a" / "b" / "y.txt") == 0o640
    again = rb.run(
        "file", {"path": str(root), "state": "directory", "recurse": True, "mode": "u=rwX,g=rX,o="}
    )
    assert not again.outcome.changed
    rb.undo("file", {}, r.snapshot)
    assert tree_state(root) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_file_owner_change_and_undo(rb: Runner, tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    f = tmp_path / "owned"
    f.write_text("x")
    r = rb.run("file", {"path": str(f), "owner": "nobody"})
    assert r.outcome.changed and f.stat().st_uid == nobody.pw_uid
    assert not rb.run("file", {"path": str(f), "owner": str(nobody.pw_uid)}).outcome.changed
    rb.undo("file", {}, r.snapshot)
    assert f.stat().st_uid == 0


# ---------------------------------------------------------------------------------------- dry-run
def test_dry_run_plans_diffs_and_leaves_the_file_system_byte_identical(rb: Runner, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "tree" / "sub").mkdir(parents=True)
    (work / "tree" / "sub" / "f").write_text("inner\n")
    (work / "conf").write_text("old line\n")
    (work / "conf").chmod(0o600)
    (work / "link").symlink_to("conf")
    (rb.project / "templates").mkdir()
    (rb.project / "templates" / "t.j2").write_text("new {{ 1 + 1 }}\n")
    before = tree_state(tmp_path)

    steps = [
        ("copy", {"content": "new line\n", "dest": str(work / "conf"), "mode": "0644"}),
        ("copy", {"content": "fresh\n", "dest": str(work / "new" / "dir" / "file")}),
        ("template", {"src": "t.j2", "dest": str(work / "conf")}),
        ("file", {"path": str(work / "tree"), "state": "absent"}),
        ("file", {"path": str(work / "conf"), "state": "absent"}),
        ("file", {"path": str(work / "made" / "here"), "state": "directory", "mode": "0700"}),
        ("file", {"path": str(work / "tree"), "state": "directory", "recurse": True, "mode": "0700"}),
        ("file", {"path": str(work / "link"), "state": "link", "src": "elsewhere"}),
        ("file", {"path": str(work / "touched"), "state": "touch"}),
        ("file", {"path": str(work / "conf"), "mode": "0666"}),
    ]
    for name, args in steps:
        r = rb.run(name, args, dry_run=True)
        assert r.outcome.ok, (name, args, r.outcome.msg)
        assert r.drive.planned, (name, args)
    assert tree_state(tmp_path) == before

    r = rb.run("copy", steps[0][1], dry_run=True)
    file_changes = [p for p in r.drive.planned if p.kind == "file"]
    assert len(file_changes) == 1
    assert "-old line\n+new line\n" in file_changes[0].diff
    assert "mode 0o600 -> 0o644" in file_changes[0].summary
