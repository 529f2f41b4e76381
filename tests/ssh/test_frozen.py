"""A peer that stops answering never hangs the run: dead-peer detection (ServerAliveInterval x
ServerAliveCountMax, from the inventory's ssh args or ssh_config), control-side step timeouts,
bounded connect/banner waits, and a Ctrl-C mid-step that leaves the connection usable.

Two ways to freeze a server: SIGSTOP its sshd processes (a hung host), or a TCP proxy that stops
forwarding (tests/fixtures/blackhole.py: a network that starts dropping everything). Every test has a
pytest-timeout bound, so a regression fails instead of hanging the suite."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.actions.commands import Command
from runbook.errors import TransportError
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.ssh import SSHTransport
from runbook.execute.transports.ssh_config import resolve
from tests.fixtures.blackhole import Blackhole
from tests.fixtures.sshd import SshdHost, SshLab
from tests.ssh.conftest import spec_for

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

FAST = "-o ServerAliveInterval=1 -o ServerAliveCountMax=2 -o ConnectTimeout=3"


class Freezer:
    """Freeze one throwaway server, by SIGSTOP or by black hole; always thawed afterwards."""

    def __init__(self, how: str, host: SshdHost):
        self.how, self.host = how, host
        self.proxy = Blackhole(host.address, host.port) if how == "blackhole" else None
        self.stopped: list[int] = []

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.proxy.port) if self.proxy else (self.host.address, self.host.port)

    def freeze(self, listener: bool = True) -> None:
        if self.proxy:
            self.proxy.freeze()
            return
        self.stopped = [self.host.pid, *self.host.session_pids()] if listener else self.host.session_pids()
        for p in self.stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proxy:
            self.proxy.close()
        for p in self.stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


@pytest.fixture(params=["sigstop", "blackhole"])
def frozen(
    request: pytest.FixtureRequest, sshd_factory, ssh_lab: SshLab, tmp_path: Path
) -> Iterator[Freezer]:
    host = sshd_factory(name="frozen")
    f = Freezer(request.param, host)
    try:
        yield f
    finally:
        f.thaw()


def transport(f: Freezer, lab: SshLab, tmp_path: Path, args: str = FAST, **opts) -> SSHTransport:
    addr, port = f.address
    kh = tmp_path / "known_hosts"
    name = addr if port == 22 else f"[{addr}]:{port}"
    kh.write_text(f.host.known_hosts_line(name=name))
    spec = HostSpec(
        name="frozen", address=addr, port=port, user="root", private_key_file=str(lab.key),
        vars={"ansible_ssh_common_args": args},
    )  # fmt: skip
    t = SSHTransport(spec, known_hosts=str(kh), ssh_config="/dev/null", **opts)
    t.connect()
    return t


def freeze_when(f: Freezer, marker: Path, **kw) -> threading.Thread:
    def go() -> None:
        for _ in range(400):
            if marker.exists():
                break
            time.sleep(0.025)
        f.freeze(**kw)

    th = threading.Thread(target=go, daemon=True)
    th.start()
    return th


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["persistent", "exec"])
def test_frozen_peer_mid_step_without_timeout_is_a_lost_connection(frozen, ssh_lab, tmp_path, mode):
    t = transport(frozen, ssh_lab, tmp_path, persistent_shell=mode == "persistent")
    try:
        marker = tmp_path / "started"
        freeze_when(frozen, marker, listener=False)
        with pytest.raises(TransportError) as err:
            t.run(Command.shell(f"touch {marker}; sleep 120"))
        assert (
            "lost" in err.value.message
            and "ServerAliveInterval 1 x ServerAliveCountMax 2" in err.value.message
        )
        assert t.unreachable
    finally:
        t.close()


@pytest.mark.timeout(60)
def test_frozen_peer_mid_step_with_a_step_timeout_ends_the_step(frozen, ssh_lab, tmp_path):
    # no dead-peer detection at all: the step's timeout alone, enforced here, still ends the wait
    t = transport(frozen, ssh_lab, tmp_path, args="-o ServerAliveInterval=0")
    try:
        marker = tmp_path / "started"
        freeze_when(frozen, marker, listener=False)
        res = t.run(Command.shell(f"touch {marker}; sleep 120"), timeout=2)
        assert res.timed_out and res.rc == 124
    finally:
        t.close()


@pytest.mark.timeout(60)
def test_frozen_peer_during_sftp_is_a_lost_connection(frozen, ssh_lab, tmp_path):
    t = transport(frozen, ssh_lab, tmp_path)
    try:
        t.stat("/")  # sftp open and working
        frozen.freeze(listener=False)
        with pytest.raises((TransportError, OSError)):
            t.write_file(str(tmp_path / "big"), b"x" * (8 << 20))
    finally:
        t.close()


@pytest.mark.timeout(60)
def test_frozen_server_during_connect_fails_within_the_connect_timeout(frozen, ssh_lab, tmp_path):
    frozen.freeze()  # the listener too: TCP connects (the kernel's backlog), the banner never comes
    with pytest.raises(TransportError) as err:
        transport(frozen, ssh_lab, tmp_path, args="-o ConnectTimeout=2")
    assert "host frozen" in err.value.message and "handshake" in err.value.message


def test_keepalive_options_come_from_ssh_args_then_ssh_config(tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host h1\n  ServerAliveInterval 7\n  ServerAliveCountMax 5\n  ConnectTimeout 4\n")
    plain = resolve(HostSpec(name="h1", address="h1"), str(cfg))
    assert (plain.server_alive_interval, plain.server_alive_count_max, plain.connect_timeout) == (7, 5, 4)
    args = {"ansible_ssh_common_args": "-o ServerAliveInterval=2 -oServerAliveCountMax=1"}
    over = resolve(HostSpec(name="h1", address="h1", vars=args), str(cfg))
    assert (over.server_alive_interval, over.server_alive_count_max, over.connect_timeout) == (2, 1, 4)
    extra = {"ansible_ssh_extra_args": "-o 'ConnectTimeout 9'"}
    assert resolve(HostSpec(name="h1", address="h1", vars=extra), str(cfg)).connect_timeout == 9
    with pytest.raises(TransportError):
        resolve(
            HostSpec(name="h1", address="h1", vars={"ansible_ssh_args": "-o ServerAliveInterval=x"}), str(cfg)
        )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["persistent", "exec"])
def test_ctrl_c_mid_step_kills_the_step_and_leaves_the_connection_usable(connect, tmp_path, mode):
    t = connect(mode=mode)
    pidfile = tmp_path / "pid"

    # a real SIGINT, as the operator's Ctrl-C (it also wakes a blocked system call), once the step runs
    def ctrl_c() -> None:
        for _ in range(400):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.025)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.2, ctrl_c)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        t.run(Command.shell(f"echo $$ > {pidfile}; sleep 60"))
    timer.join()
    res = t.run(Command.shell("echo still here"))
    assert (res.rc, res.stdout) == (0, "still here\n")
    pid = int(pidfile.read_text())
    for _ in range(200):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.025)
    assert not os.path.exists(f"/proc/{pid}"), "the interrupted step is still running"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["persistent", "exec"])
def test_a_step_timeout_bounds_even_the_start_of_a_command_on_a_frozen_peer(frozen, ssh_lab, tmp_path, mode):
    # frozen before the command: starting it (exec request, sending the script) gets no answer, and
    # dead-peer detection is off: the step's timeout, enforced here, is the only bound there is
    t = transport(
        frozen, ssh_lab, tmp_path, args="-o ServerAliveInterval=0", persistent_shell=mode == "persistent"
    )
    try:
        frozen.freeze(listener=False)
        try:
            res = t.run(Command.shell("echo never"), timeout=2)
        except TransportError as exc:
            assert "step's timeout (2s)" in exc.message
        else:
            assert res.timed_out and res.rc == 124
    finally:
        t.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["persistent", "exec"])
def test_a_quiet_step_on_a_live_server_is_not_taken_for_a_dead_peer(connect, ssh_lab, mode):
    # 1s x 2: the step prints nothing for 4s; the server answers the keepalives, so it lives
    host = ssh_lab.hosts[0]
    spec = spec_for(host, ssh_lab, vars={"ansible_ssh_common_args": FAST})
    t = connect(mode=mode, spec=spec)
    res = t.run(Command.shell("sleep 4; echo done"))
    assert (res.rc, res.stdout) == (0, "done\n")
    assert t.unreachable is None and t._conn.dead_reason is None


@pytest.mark.timeout(60)
def test_a_frozen_jump_host_fails_the_connection_within_the_connect_timeout(ssh_lab, tmp_path):
    bastion = ssh_lab.bastion
    proxy = Blackhole(bastion.address, bastion.port)
    try:
        kh = tmp_path / "known_hosts"
        kh.write_text(
            bastion.known_hosts_line(name=f"[127.0.0.1]:{proxy.port}")
            + ssh_lab.hidden.known_hosts_line(name=f"[hidden.internal]:{ssh_lab.hidden.port}")
        )
        spec = HostSpec(
            name="hidden", address="hidden.internal", port=ssh_lab.hidden.port, user="root",
            private_key_file=str(ssh_lab.key),
            vars={"ansible_ssh_common_args": f"-J root@127.0.0.1:{proxy.port} {FAST}"},
        )  # fmt: skip
        ok = SSHTransport(spec, known_hosts=str(kh), ssh_config="/dev/null")
        ok.connect()  # through the (still forwarding) proxy to the bastion, then to the hidden host
        assert ok.run(Command.shell("echo via")).stdout == "via\n"
        proxy.freeze()
        with pytest.raises(TransportError) as lost:
            ok.run(Command.shell("sleep 60"))
        assert "jump host" in lost.value.message or "lost" in lost.value.message
        ok.close()
        again = SSHTransport(spec, known_hosts=str(kh), ssh_config="/dev/null")
        with pytest.raises(TransportError) as err:
            again.connect()
        assert "jump host" in err.value.message and "handshake" in err.value.message
    finally:
        proxy.close()
