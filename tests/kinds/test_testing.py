"""runbook.testing, the fake host kind authors unit-test with: it answers what was scripted, keeps
what the kind did, and runs a kind the way the engine does (arguments checked, dry-run, read-only,
undo from the snapshot)."""

from __future__ import annotations

import hashlib

import pytest

from runbook import testing
from runbook.actions import Run, Stat, WriteFile
from runbook.errors import RunbookError
from runbook.execute.driver import NotReadOnly


def test_a_command_without_a_scripted_reply_gets_127_and_is_listed() -> None:
    host = testing.FakeHost().on(r"^uptime$", stdout="up 3 days\n")
    done = testing.run("shell", "uptime; whoami", host)
    assert not done.ok and done.outcome.rc == 127
    assert host.unanswered == ["uptime; whoami"]
    assert "no reply scripted" in done.outcome.stderr


def test_replies_answer_in_order_and_times_limits_them() -> None:
    host = testing.FakeHost().on("probe", stdout="first\n", times=1).on("probe", stdout="again\n")
    assert testing.run("shell", {"cmd": "probe", "changes": False}, host).outcome.stdout == "first\n"
    assert testing.run("shell", {"cmd": "probe", "changes": False}, host).outcome.stdout == "again\n"


def test_actions_are_kept_in_order() -> None:
    host = testing.FakeHost(dirs=["/etc"])
    done = testing.run("copy", {"content": "x\n", "dest": "/etc/x"}, host)
    names = [type(a).__name__ for a in done.actions]
    assert names.index("Snapshot") < names.index("WriteFile") and names[0] == "Stat", names
    (write,) = done.of_type(WriteFile)
    assert write.path == "/etc/x" and write.content == b"x\n"
    assert done.of_type(Stat) and not done.of_type(Run)


def _sha256sum(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest() + "  /etc/app.conf\n"


def test_undo_puts_back_what_the_snapshot_recorded() -> None:
    host = testing.FakeHost(files={"/etc/app.conf": "old\n"})
    done = testing.run("copy", {"content": "new\n", "dest": "/etc/app.conf"}, host)
    assert done.changed and host.files["/etc/app.conf"] == b"new\n"
    (snap,) = done.snapshots
    back = testing.undo("copy", {"content": "new\n", "dest": "/etc/app.conf"}, snap, host)
    assert back.ok, back.outcome
    assert host.files["/etc/app.conf"] == b"old\n"
    host.on(r"^sha256sum -- /etc/app.conf$", stdout=_sha256sum(b"old\n"))
    checked = testing.verify_undo("copy", {"content": "new\n", "dest": "/etc/app.conf"}, snap, host)
    assert checked.ok, checked.outcome
    assert checked.commands == ["sha256sum -- /etc/app.conf"]
    host.files["/etc/app.conf"] = b"changed again\n"
    host.replies.clear()
    host.on("sha256sum", stdout=_sha256sum(b"changed again\n"))
    assert not testing.verify_undo("copy", {"content": "new\n", "dest": "/etc/app.conf"}, snap, host).ok


def test_read_only_refuses_a_change_like_preflight() -> None:
    with pytest.raises(NotReadOnly):
        testing.run("shell", "rm -rf /srv", testing.FakeHost(), read_only=True)


def test_arguments_are_rendered_coerced_and_checked_like_the_engine() -> None:
    host = testing.FakeHost(dirs=["/"]).on("df -Pk", stdout="F 1024-blocks Used Available Cap M\n/d 2048 0 2048 0% /\n")
    done = testing.run("check.disk", {"min_free_mb": "{{ need }}"}, host, variables={"need": "1"})
    assert done.ok, done.outcome  # "1" rendered as text became the number the schema asks for
    with pytest.raises(RunbookError, match="Additional properties"):
        testing.run("check.disk", {"min_free": 1}, host)


def test_an_unscripted_client_operation_is_the_steps_failure() -> None:
    done = testing.run("redis.ping", {"url": "redis://127.0.0.1:6379/0"}, testing.FakeHost())
    assert not done.ok and "no reply scripted for the client operation redis.ping" in done.msg


def test_a_client_reply_may_be_computed_from_the_parameters() -> None:
    host = testing.FakeHost(clients={"postgres.query": lambda p: {"ok": True, "rows": [[p["sql"]]], "columns": ["q"]}})
    done = testing.run("postgres.query", {"dsn": "postgresql://u@h/db", "sql": "select 'hi'"}, host)
    assert done.registered["value"] == "select 'hi'"
