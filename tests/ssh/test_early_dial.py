"""The SSH transport's early TCP connect (``dial_early``): begun before paramiko is imported when the
host's address and port are known without it, used by the connect that follows when the endpoint is
that one, and closed when nobody uses it; a connect that fails fails once, as it would have."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.actions.commands import Command
from runbook.errors import TransportError
from runbook.execute.transports import ssh_connect
from runbook.execute.transports.ssh import SSHTransport
from runbook.execute.transports.ssh_connect import Dial
from tests.fixtures.sshd import SshLab
from tests.ssh.conftest import spec_for

pytestmark = [pytest.mark.ssh]


@pytest.fixture
def dials(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """Every TCP connection the transport makes to an SSH server (early or not)."""
    made: list[socket.socket] = []
    real = ssh_connect.dial

    def recording(*args: object, **kwargs: object) -> socket.socket:
        sock = real(*args, **kwargs)
        made.append(sock)
        return sock

    monkeypatch.setattr(ssh_connect, "dial", recording)
    yield made


def transport(lab: SshLab, ssh_config: str = "/dev/null", **spec_kw: object) -> SSHTransport:
    spec = spec_for(lab.hosts[0], lab, **spec_kw)
    return SSHTransport(spec, known_hosts=str(lab.known_hosts), ssh_config=ssh_config, persistent_shell=False)


def test_the_connect_uses_the_socket_dialled_early(ssh_lab: SshLab, dials: list[socket.socket]) -> None:
    t = transport(ssh_lab)
    try:
        t.dial_early()
        assert t.options.dialed is not None
        t.connect()
        assert len(dials) == 1 and t.options.dialed is None
        assert t._conn is not None and t._conn.transport.sock is dials[0]
        assert dials[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert t.run(Command.shell("echo over the early socket")).stdout == "over the early socket\n"
    finally:
        t.close()


@pytest.mark.parametrize(
    "why",
    ["an ssh_config file", "ProxyJump in the ssh args", "-J in the ssh args"],
)
def test_nothing_is_dialled_early_when_the_endpoint_needs_the_config(
    ssh_lab: SshLab, tmp_path: Path, dials: list[socket.socket], why: str
) -> None:
    config, hv = "/dev/null", {}
    if why == "an ssh_config file":
        config = str(tmp_path / "config")
        Path(config).write_text("Host *\n  ServerAliveInterval 15\n")
    else:
        option = {"ProxyJump": "-o ProxyJump=jump.example", "-J": "-J root@jump.example:2222"}[why.split()[0]]
        hv = {"ansible_ssh_common_args": option}
    t = transport(ssh_lab, ssh_config=config, vars=hv)
    try:
        t.dial_early()
        assert t.options.dialed is None and dials == []
    finally:
        t.close()


def test_a_refused_connect_fails_once_with_the_usual_message(ssh_lab: SshLab, dials: list[socket.socket]) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # nothing listens there once closed
    t = transport(ssh_lab, address="127.0.0.1", port=port)
    try:
        t.dial_early()
        with pytest.raises(TransportError) as err:
            t.connect()
        assert f"cannot connect to 127.0.0.1:{port}" in err.value.message
        assert "Connection refused" in err.value.message
        assert t.options.dialed is None  # not kept for a later connect
    finally:
        t.close()


@pytest.mark.parametrize("how", ["close", "abandon"])
def test_a_socket_dialled_early_and_not_used_is_closed(ssh_lab: SshLab, dials: list[socket.socket], how: str) -> None:
    t = transport(ssh_lab)
    t.dial_early()
    dialed = t.options.dialed
    assert dialed is not None
    dialed._done.wait(10)
    getattr(t, how)()
    assert len(dials) == 1 and dials[0].fileno() == -1
    assert t.options.dialed is None


def test_a_dial_to_another_endpoint_is_not_taken(ssh_lab: SshLab, dials: list[socket.socket]) -> None:
    host = ssh_lab.hosts[0]
    d = Dial(host.address, host.port, 5.0, "host web1", 15.0)
    d._done.wait(10)
    assert d.take(host.address, host.port + 1) is None  # resolved elsewhere: the caller dials itself
    assert dials[0].fileno() == -1


def test_connect_timeout_zero_in_the_ssh_args_is_the_default_for_the_early_connect_too(
    ssh_lab: SshLab, dials: list[socket.socket]
) -> None:
    """``-o ConnectTimeout=0`` means the transport's default to the connect: the early one uses it."""
    t = transport(ssh_lab, vars={"ansible_ssh_common_args": "-o ConnectTimeout=0"})
    try:
        t.dial_early()
        assert t.options.dialed is not None and t.options.dialed.timeout == t.options.connect_timeout
        t.connect()
        assert len(dials) == 1 and t.run(Command.shell("echo ok")).stdout == "ok\n"
    finally:
        t.close()
