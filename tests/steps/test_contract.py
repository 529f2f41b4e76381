"""The contract: read-only kinds never yield a mutating action (or a snapshot), mutating kinds can undo,
and every schema is valid JSON Schema that accepts and refuses the right arguments."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from runbook.actions import Snapshot
from tests.steps.support import KINDS, Runner, base_url

READ_ONLY = {"check.memory", "check.disk", "check.version", "check.env_file", "check.port", "http.get"}
READ_ONLY |= {"wait", "assert", "fail"}
MUTATING = {"copy", "template", "file", "http.request", "http.download"}


def test_the_kinds_are_all_here_and_flagged_right() -> None:
    assert set(KINDS) == READ_ONLY | MUTATING
    for name in READ_ONLY:
        assert KINDS[name].mutating is False, name
    for name in MUTATING:
        assert KINDS[name].mutating is True, name
    for name in ("copy", "template", "file", "http.download"):
        assert KINDS[name]().can_undo, name


@pytest.mark.parametrize("mode", ["dry-run", "preflight"])
def test_read_only_kinds_plan_nothing(mode: str, rb: Runner, tmp_path: Path, http_server) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    env.chmod(0o600)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    url = base_url(http_server) + "/health"
    cases: list[tuple[str, Any]] = [
        ("check.memory", {"min_mb": 1}),
        ("check.disk", {"path": str(tmp_path), "min_free_mb": 1, "min_free_inodes": 1}),
        ("check.version", {"of": "python3", "min": "3"}),
        ("check.version", {"command": "echo v1.2.3", "min": "1"}),
        ("check.env_file", {"path": str(env), "mode": "0600", "require": ["A"]}),
        ("check.port", {"port": port}),
        ("http.get", {"url": url, "expect": {"json": {"status": "healthy"}}}),
        ("wait", {"seconds": 0.01}),
        ("wait", {"port": port, "timeout": 1}),
        ("wait", {"path": str(tmp_path / "nothing"), "state": "absent", "timeout": 1}),
        ("wait", {"url": url, "timeout": 1}),
        ("assert", {"that": [True]}),
        ("fail", {"msg": "x"}),
    ]
    try:
        for name, args in cases:
            r = rb.run(name, args, dry_run=mode == "dry-run", read_only=mode == "preflight")
            assert r.drive.planned == [], name
            assert r.outcome.ok == (name != "fail"), (name, r.outcome.msg)
            bad = [a for a in r.drive.actions if a.mutating or isinstance(a, Snapshot)]
            assert bad == [], (name, bad)
    finally:
        sock.close()


SCHEMA_CASES: dict[str, tuple[list[Any], list[Any]]] = {
    "copy": (
        [
            {"src": "a", "dest": "/x"},
            {"content": "hi", "dest": "/x", "mode": "0644", "owner": "app", "backup": True},
        ],
        [
            {"dest": "/x"},
            {"src": "a", "content": "b", "dest": "/x"},
            {"src": "a"},
            {"src": "a", "dest": "/x", "bogus": 1},
        ],
    ),
    "template": (
        [{"src": "a.j2", "dest": "/x", "mode": 0o644, "group": 0}],
        [{"src": "a.j2"}, {"src": "a.j2", "dest": "/x", "mode": ["0644"]}],
    ),
    "file": (
        [
            {"path": "/x", "state": "directory", "mode": "0755", "recurse": True},
            {"path": "/l", "state": "link", "src": "/t"},
        ],
        [{"path": "/l", "state": "link"}, {"path": "/x", "state": "gone"}, {"state": "absent"}],
    ),
    "check.memory": (
        [{"min_mb": 3800}, {"max_used_percent": 90, "min_available_mb": 100}],
        [{"min_mb": -1}, {"min": 1}],
    ),
    "check.disk": (
        [{"path": "/", "min_free_gb": 10}, {"min_free_percent": 5, "min_free_inodes": 1000}],
        [{"min_free_percent": 101}],
    ),
    "check.version": (
        [{"of": "docker", "min": "20.10"}, {"command": ["x", "--version"], "regex": "(\\d+)", "max": 3}],
        [{"min": "1"}, {"of": "docker", "min": 20.1}, {"of": "docker", "command": []}],
    ),
    "check.env_file": (
        [{"path": "/app/.env", "mode": "0600", "require": ["A", "B"], "forbid_empty": True}],
        [{"require": ["A"]}, {"path": "/e", "require": "A"}],
    ),
    "check.port": (
        [{"port": 8000, "host": "127.0.0.1", "state": "free"}],
        [{"port": 0}, {"port": 8000, "state": "up"}],
    ),
    "http.get": (
        [
            {"url": "http://127.0.0.1/h", "expect": {"status": [200, "2xx"], "json": {"a.b": 1}}},
            "https://x/h",
        ],
        [
            {"url": "ftp://x"},
            {"url": "http://x", "method": "POST"},
            {"url": "http://x", "expect": {"status": "ok"}},
        ],
    ),
    "http.request": (
        [{"url": "http://x/deploy", "method": "POST", "json": {"a": 1}, "changes": True}],
        [
            {"url": "http://x", "body": "a", "json": {}},
            {"method": "GET"},
            {"url": "http://x", "json": {}, "multipart": {"f": "v"}},
            {"url": "http://x", "multipart": {"f": {"file": "a", "content": "b"}}},
            {"url": "http://x", "multipart": {}},
        ],
    ),
    "http.download": (
        [{"url": "https://x/app.tgz", "dest": "/opt/app/", "checksum": "sha256:ab", "mode": "0644"}],
        [{"url": "https://x/a"}, {"dest": "/x"}, {"url": "http://x", "dest": "/x", "max_size": 0}],
    ),
    "wait": (
        [
            {"seconds": 3},
            {"port": 5432, "timeout": 30},
            {"path": "/x", "state": "absent"},
            {"url": "http://x", "status": 200},
        ],
        [{}, {"seconds": 1, "port": 2}, {"port": 1, "state": "running"}],
    ),
    "assert": ([{"that": [True], "fail_msg": "no"}], [{"fail_msg": "no"}]),
    "fail": ([{"msg": "stop"}, "stop"], [{"message": "stop"}]),
}


@pytest.mark.parametrize("name", sorted(SCHEMA_CASES))
def test_schema_accepts_and_refuses(name: str) -> None:
    kind = KINDS[name]()
    jsonschema.Draft202012Validator.check_schema(kind.schema)
    validator = jsonschema.Draft202012Validator(kind.schema)
    good, bad = SCHEMA_CASES[name]
    for args in good:
        validator.validate(kind.normalize(args))
    for args in bad:
        assert not validator.is_valid(kind.normalize(args)), (name, args)


def test_every_kind_has_a_schema_case() -> None:
    assert set(SCHEMA_CASES) == set(KINDS)


def _touches_backup(action: Any, backup_dir: str) -> bool:
    argv = getattr(getattr(action, "command", None), "argv", None) or ()
    return any(str(a).startswith(backup_dir) for a in argv)


def test_mutating_kinds_snapshot_before_any_change(rb: Runner, tmp_path: Path) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("x")
    (tmp_path / "conf").write_text("old\n")
    (rb.project / "templates").mkdir()
    (rb.project / "templates" / "t.j2").write_text("new\n")
    cases: list[tuple[str, Any]] = [
        ("copy", {"content": "new\n", "dest": str(tmp_path / "conf"), "mode": "0600", "backup": True}),
        ("copy", {"content": "new\n", "dest": str(tmp_path / "fresh" / "dir" / "f")}),
        ("template", {"src": "t.j2", "dest": str(tmp_path / "conf2")}),
        ("file", {"path": str(tmp_path / "tree"), "state": "directory", "recurse": True, "mode": "0700"}),
        ("file", {"path": str(tmp_path / "tree"), "state": "absent"}),
        ("file", {"path": str(tmp_path / "conf"), "state": "absent"}),
        ("file", {"path": str(tmp_path / "made" / "d"), "state": "directory"}),
        ("file", {"path": str(tmp_path / "ln"), "state": "link", "src": "conf"}),
        ("file", {"path": str(tmp_path / "touch"), "state": "touch"}),
    ]
    backup_dir = rb.vars["runbook_backup_dir"]
    for name, args in cases:
        r = rb.run(name, args)
        assert r.outcome.ok and r.outcome.changed, (name, args, r.outcome.msg)
        kinds = [
            "snapshot" if isinstance(a, Snapshot) else "change"
            for a in r.drive.actions
            if isinstance(a, Snapshot) or (a.mutating and not _touches_backup(a, backup_dir))
        ]
        assert kinds[0] == "snapshot" and kinds.count("snapshot") == 1, (name, kinds)
