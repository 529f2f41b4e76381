"""wait, assert and fail."""

from __future__ import annotations

import socket
from pathlib import Path

from runbook.actions import Sleep
from tests.steps.support import Runner, base_url


def sleeps(r) -> list[float]:
    return [a.seconds for a in r.drive.actions if isinstance(a, Sleep)]


def test_wait_seconds_yields_a_sleep(rb: Runner) -> None:
    r = rb.run("wait", {"seconds": 0.01})
    assert r.outcome.ok and sleeps(r) == [0.01]


def test_wait_for_a_port(rb: Runner) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    try:
        r = rb.run("wait", {"port": port, "timeout": 5})
        assert r.outcome.ok and r.outcome.data["tries"] == 1 and sleeps(r) == []
        r = rb.run("wait", {"port": port, "state": "stopped", "timeout": 0.2, "sleep": 0.05})
        assert not r.outcome.ok
        assert r.outcome.msg.startswith(f"timed out after 0.2s waiting until 127.0.0.1:{port} is closed")
        assert f"listening: 127.0.0.1:{port}" in r.outcome.msg and sleeps(r)
    finally:
        sock.close()
    assert rb.run("wait", {"port": port, "state": "stopped"}).outcome.ok


def test_wait_for_a_path(rb: Runner, tmp_path: Path) -> None:
    f = tmp_path / "ready"
    r = rb.run("wait", {"path": str(f), "timeout": 0.1, "sleep": 0.05})
    assert not r.outcome.ok and "is present" in r.outcome.msg and "(last: absent)" in r.outcome.msg
    f.write_text("")
    assert rb.run("wait", {"path": str(f)}).outcome.ok
    assert rb.run("wait", {"path": str(tmp_path / "gone"), "state": "absent"}).outcome.ok
    r = rb.run("wait", {"path": str(f), "state": "stopped"})
    assert not r.outcome.ok and "state must be present or absent" in r.outcome.msg


def test_wait_for_a_url_polls_until_it_answers(rb: Runner, http_server) -> None:
    r = rb.run("wait", {"url": base_url(http_server) + "/flaky", "status": 200, "timeout": 30, "sleep": 0.01})
    assert r.outcome.ok and r.outcome.data["tries"] == 3, r.outcome.msg
    assert sleeps(r) == [0.01, 0.01]


def test_wait_in_dry_run_reports_instead_of_waiting(rb: Runner, tmp_path: Path) -> None:
    r = rb.run("wait", {"path": str(tmp_path / "later"), "timeout": 600}, dry_run=True)
    assert r.outcome.ok and r.outcome.msg.startswith("dry-run: not yet") and sleeps(r) == []


def test_assert(rb: Runner) -> None:
    assert rb.run("assert", {"that": [True, "True", "yes", 1]}).outcome.ok
    r = rb.run("assert", {"that": [True, "False"], "fail_msg": "disk too small"})
    assert not r.outcome.ok and r.outcome.msg == "disk too small" and r.outcome.data["failed_assertion"] == 1
    r = rb.run("assert", {"that": False})
    assert r.outcome.msg == "assertion failed: that[0] is False"
    r = rb.run("assert", {"that": ["x > 1"]})
    assert not r.outcome.ok and "that[0] is the text 'x > 1', not true or false" in r.outcome.msg
    assert rb.run("assert", {"that": True, "success_msg": "fine"}).outcome.msg == "fine"


def test_fail(rb: Runner) -> None:
    r = rb.run("fail", "stop here")
    assert not r.outcome.ok and r.outcome.msg == "stop here"
    assert rb.run("fail", {}).outcome.msg == "failed as requested"
