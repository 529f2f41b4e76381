"""check.* on this machine: memory, disk, versions (real tools and stand-ins), env files, ports."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import pytest

from tests.steps.support import KINDS, Runner

CANARY = "s3cr3t-CANARY-value-7f3a"


def test_memory_on_this_machine(rb: Runner) -> None:
    r = rb.run("check.memory", {"min_mb": 64})
    assert r.outcome.ok, r.outcome.msg
    data = r.outcome.data
    assert data["total_mb"] > 64 and 0 < data["available_mb"] <= data["total_mb"]
    assert data["limit_source"] == "meminfo" or data["limit_source"].startswith("cgroup v")
    too_much = rb.run("check.memory", {"min_mb": 10**9})
    assert not too_much.outcome.ok
    assert f"memory {data['total_mb']} MB < required 1000000000 MB" in too_much.outcome.msg
    assert (
        not rb.run("check.memory", {"max_used_percent": 0}).outcome.ok
        or data["available_mb"] == data["total_mb"]
    )


def test_disk_on_this_machine(rb: Runner, tmp_path: Path) -> None:
    r = rb.run("check.disk", {"path": str(tmp_path), "min_free_mb": 1, "min_free_inodes": 1})
    assert r.outcome.ok, r.outcome.msg
    assert r.outcome.data["free_mb"] > 1 and r.outcome.data["mount"].startswith("/")
    r = rb.run("check.disk", {"path": str(tmp_path / "not" / "yet"), "min_free_gb": 10**6})
    assert not r.outcome.ok
    assert "GB free < required 1000000 GB" in r.outcome.msg and str(tmp_path / "not" / "yet") in r.outcome.msg
    r = rb.run("check.disk", {"path": "/", "min_free_percent": 100})
    assert not r.outcome.ok and "% free < required 100%" in r.outcome.msg


def test_version_of_python_and_custom_commands(rb: Runner) -> None:
    exe = sys.executable
    mine = ".".join(map(str, sys.version_info[:3]))
    r = rb.run("check.version", {"of": "python", "command": [exe, "--version"], "min": "3.8"})
    assert r.outcome.ok and r.outcome.data["version"] == mine
    r = rb.run("check.version", {"of": "python", "command": [exe, "--version"], "min": "99.1"})
    assert not r.outcome.ok and r.outcome.msg == f"python {mine} < required 99.1"
    r = rb.run("check.version", {"of": "python", "command": [exe, "--version"], "min": "3", "max": "3.0"})
    assert not r.outcome.ok and r.outcome.msg == f"python {mine} > allowed max 3.0"
    r = rb.run(
        "check.version", {"of": "python", "command": [exe, "--version"], "max": str(sys.version_info[0])}
    )
    assert r.outcome.ok  # max is a prefix: 3 admits 3.11.7
    r = rb.run(
        "check.version", {"command": "echo 'tool 1.0 (lib 2.5.1)'", "regex": r"lib ([\d.]+)", "min": "2.5"}
    )
    assert r.outcome.ok and r.outcome.data["version"] == "2.5.1"


def test_version_problems_are_named(rb: Runner) -> None:
    r = rb.run("check.version", {"of": "no-such-tool-xyz", "min": "1.0"})
    assert not r.outcome.ok and r.outcome.msg.startswith("no-such-tool-xyz not found: ")
    r = rb.run("check.version", {"of": "python", "command": "echo no version here", "min": "1"})
    assert not r.outcome.ok and "no version in the output" in r.outcome.msg
    r = rb.run("check.version", {"of": "python", "command": "echo boom >&2; exit 3", "min": "1"})
    assert not r.outcome.ok and "failed: boom" in r.outcome.msg
    r = rb.run("check.version", {"of": "python", "min": "not-a-version"})
    assert not r.outcome.ok and "'not-a-version' is not a version" in r.outcome.msg


def test_version_float_from_yaml_is_refused_with_a_hint(rb: Runner) -> None:
    gen = KINDS["check.version"]().run({"of": "docker", "min": 20.1}, rb.ctx())  # YAML: min: 20.10
    with pytest.raises(StopIteration) as stop:
        next(gen)  # fails before running anything
    assert 'quote versions, e.g. min: "20.10"' in stop.value.value.msg


def test_old_docker_fails_with_versions_in_the_message(rb: Runner, tmp_path: Path, monkeypatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi\n'
        'echo "Docker version 19.03.1, build 74b1e89"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    r = rb.run("check.version", {"of": "docker", "min": "20.10"})
    assert not r.outcome.ok
    assert r.outcome.msg.startswith("docker 19.03.1 < required 20.10")
    assert "Cannot connect to the Docker daemon" in r.outcome.msg
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = rb.run("check.version", {"of": "docker", "min": "20.10"})
    assert not r.outcome.ok and r.outcome.msg.startswith("docker not found: ")


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not installed")
def test_version_of_postgres_client(rb: Runner) -> None:
    r = rb.run("check.version", {"of": "postgres", "min": "9.6"})
    assert r.outcome.ok and r.outcome.data["command"].endswith("psql --version")


# ------------------------------------------------------------------------------------------- .env
ENV_TEXT = f"""# app settings
export DATABASE_URL="postgres://app:{CANARY}@127.0.0.1/app?sslmode=disable"
REDIS_URL=redis://:{CANARY}@127.0.0.1:6379/0  # comment
API_TOKEN='{CANARY}'
EMPTY_ONE=
bad line with {CANARY}
"""


def all_text(r) -> str:
    """Everything a step hands back or leaves behind, as text."""
    parts = [repr(r.outcome), json.dumps(r.outcome.registered(), default=str)]
    parts += [repr(r.drive.planned), repr(r.drive.snapshots), repr(r.drive.commands)]
    return "\n".join(parts)


def test_env_file_ok_and_failing_never_shows_values(rb: Runner, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(ENV_TEXT.replace(f"bad line with {CANARY}\n", ""))
    env.chmod(0o600)
    ok = rb.run(
        "check.env_file",
        {"path": str(env), "mode": "0600", "require": ["DATABASE_URL", "REDIS_URL", "API_TOKEN"]},
    )
    assert ok.outcome.ok, ok.outcome.msg
    assert ok.outcome.data["keys"] == ["API_TOKEN", "DATABASE_URL", "EMPTY_ONE", "REDIS_URL"]
    assert CANARY not in all_text(ok)

    env.write_text(ENV_TEXT)
    env.chmod(0o644)
    bad = rb.run(
        "check.env_file",
        {
            "path": str(env),
            "mode": "0600",
            "require": ["DATABASE_URL", "MISSING_KEY", "EMPTY_ONE"],
            "forbid_empty": True,
        },
    )
    msg = bad.outcome.msg
    assert not bad.outcome.ok
    assert "mode 0644, more open than 0600" in msg and f"chmod 0600 {env}" in msg
    assert "lacks MISSING_KEY" in msg and "has empty EMPTY_ONE" in msg
    assert f"{env}:6: not KEY=VALUE" in msg
    assert bad.outcome.data["missing"] == ["MISSING_KEY"] and bad.outcome.data["empty"] == ["EMPTY_ONE"]
    assert CANARY not in all_text(bad)


def test_env_file_missing_owner_and_all_keys_non_empty(rb: Runner, tmp_path: Path) -> None:
    r = rb.run("check.env_file", {"path": str(tmp_path / "absent.env")})
    assert not r.outcome.ok and r.outcome.msg == f"{tmp_path / 'absent.env'} does not exist"
    env = tmp_path / "e"
    env.write_text(f"A={CANARY}\nB=\n")
    r = rb.run("check.env_file", {"path": str(env), "forbid_empty": True, "owner": "nobody-at-all"})
    assert not r.outcome.ok and "has empty B" in r.outcome.msg and "not nobody-at-all" in r.outcome.msg
    assert CANARY not in all_text(r)


# ------------------------------------------------------------------------------------------ ports
def test_port_listening_and_free(rb: Runner) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    try:
        r = rb.run("check.port", {"port": port})
        assert r.outcome.ok and r.outcome.data["listeners"] == [f"127.0.0.1:{port}"]
        r = rb.run("check.port", {"port": port, "state": "free"})
        assert (
            not r.outcome.ok
            and r.outcome.msg == f"port {port} on 127.0.0.1 is in use (listening: 127.0.0.1:{port})"
        )
        assert rb.run("check.port", {"port": port, "host": "localhost"}).outcome.ok
    finally:
        sock.close()
    r = rb.run("check.port", {"port": port, "state": "free"})
    assert r.outcome.ok
    r = rb.run("check.port", {"port": port})
    assert not r.outcome.ok and r.outcome.msg == f"nothing listens on 127.0.0.1:{port}"
    r = rb.run("check.port", {"port": port, "host": "db.internal"})
    assert not r.outcome.ok and "must be an IP address or localhost" in r.outcome.msg


def test_port_on_ipv6_loopback(rb: Runner) -> None:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    sock.listen(1)
    port = sock.getsockname()[1]
    try:
        assert rb.run("check.port", {"port": port, "host": "::1"}).outcome.ok
        assert not rb.run("check.port", {"port": port, "host": "127.0.0.1"}).outcome.ok
    finally:
        sock.close()


def test_wait_and_check_port_share_one_port_host_rule(rb: Runner) -> None:
    """One home (kinds/checks.py: port_host, listeners_at): the same default address and the same
    refusal of a host name, whichever step asks."""
    from runbook.kinds.checks import DEFAULT_PORT_HOST

    sock = socket.socket()
    sock.bind((DEFAULT_PORT_HOST, 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    try:
        assert rb.run("check.port", {"port": port}).outcome.ok
        assert rb.run("wait", {"port": port, "timeout": 2}).outcome.ok
    finally:
        sock.close()
    check = rb.run("check.port", {"port": port, "host": "db.internal"}).outcome
    wait = rb.run("wait", {"port": port, "host": "db.internal", "timeout": 1}).outcome
    assert check.msg == "check.port host 'db.internal' must be an IP address or localhost"
    assert not wait.ok and "wait: host 'db.internal' must be an IP address or localhost" in wait.msg
