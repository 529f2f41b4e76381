"""Connection settings (ssh_config, ProxyJump through a bastion), tunnels and connection errors."""

from __future__ import annotations

import http.server
import os
import threading
import time
import urllib.request

import pytest

from runbook.actions.commands import Command
from runbook.errors import TransportError
from runbook.execute.transports.base import HostSpec
from tests.fixtures.sshd import HIDDEN_NAME
from tests.ssh.conftest import spec_for

pytestmark = [pytest.mark.slow, pytest.mark.ssh]


def _server_address(t) -> str:
    """The sshd address the session landed on (SSH_CONNECTION's third field)."""
    return t.run(Command.shell('set -- $SSH_CONNECTION; echo "$3:$4"')).stdout.strip()


def test_ssh_config_alias(connect, ssh_lab):
    """ansible_host may be an ssh_config alias: HostName, Port, User and IdentityFile come from it."""
    web2 = ssh_lab.hosts[1]
    spec = HostSpec(name="app", address="web2")  # no port, user or key in the inventory
    t = connect(spec=spec, ssh_config=str(ssh_lab.ssh_config))
    assert _server_address(t) == f"{web2.address}:{web2.port}"
    assert t.endpoint.user == "root" and t.endpoint.identity_files == (str(ssh_lab.key),)


def test_inventory_vars_beat_ssh_config(connect, ssh_lab):
    web1, web3 = ssh_lab.hosts[0], ssh_lab.hosts[2]
    spec = HostSpec(name="app", address="web3", port=web1.port, user="root")
    t = connect(spec=spec, ssh_config=str(ssh_lab.ssh_config))
    assert _server_address(t) == f"{web3.address}:{web1.port}"  # HostName from config, port from inventory


def test_proxyjump_through_bastion(connect, ssh_lab, tmp_path):
    hidden, bastion = ssh_lab.hidden, ssh_lab.bastion
    # the control machine cannot reach the hidden host by its name at all ...
    with pytest.raises(TransportError, match="cannot resolve"):
        connect(spec=HostSpec(name="direct", address=HIDDEN_NAME, port=hidden.port, user="root"))
    # ... but through the bastion (ProxyJump from ssh_config) it can
    t = connect(spec=HostSpec(name="hidden", address="hidden"), ssh_config=str(ssh_lab.ssh_config))
    assert [j.hostname for j in t.endpoint.jumps] == [bastion.address]
    assert _server_address(t) == f"{hidden.address}:{hidden.port}"
    t.write_file(f"{tmp_path}/jump-test", b"via bastion")
    assert t.read_file(f"{tmp_path}/jump-test") == b"via bastion"
    assert f"{HIDDEN_NAME}" in bastion.log() and "direct-tcpip" in bastion.log()


def test_proxyjump_from_ansible_ssh_common_args(connect, ssh_lab):
    hidden, bastion = ssh_lab.hidden, ssh_lab.bastion
    spec = spec_for(
        hidden,
        ssh_lab,
        name="hidden2",
        address=HIDDEN_NAME,
        vars={"ansible_ssh_common_args": f"-o ProxyJump=root@{bastion.address}:{bastion.port}"},
    )
    t = connect(spec=spec)
    assert _server_address(t) == f"{hidden.address}:{hidden.port}"


def test_proxycommand(connect, ssh_lab, tmp_path):
    """ProxyCommand from ssh_config: the real OpenSSH client (`ssh -W`) through the bastion."""
    b, hidden = ssh_lab.bastion, ssh_lab.hidden
    cfg = tmp_path / "config"
    cfg.write_text(
        f"Host inner\n  HostName {HIDDEN_NAME}\n  Port {hidden.port}\n  User root\n  IdentityFile {ssh_lab.key}\n"
        f"  ProxyCommand ssh -F /dev/null -i {ssh_lab.key} -o BatchMode=yes -o UserKnownHostsFile={ssh_lab.known_hosts}"
        f" -o StrictHostKeyChecking=yes -p {b.port} -W %h:%p root@{b.address}\n"
    )
    t = connect(spec=HostSpec(name="inner", address="inner"), ssh_config=str(cfg))
    assert _server_address(t) == f"{hidden.address}:{hidden.port}"


def test_ssh_agent_keys(connect, ssh_lab, tmp_path, monkeypatch):
    """No key file anywhere: the key comes from a real ssh-agent (SSH_AUTH_SOCK)."""
    import os
    import subprocess
    import time

    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.01)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(ssh_lab.key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on
        spec = spec_for(ssh_lab.hosts[0], ssh_lab, private_key_file=None)
        t = connect(spec=spec)
        assert t.run(Command.shell("echo via-agent")).stdout == "via-agent\n"
    finally:
        agent.terminate()
        agent.wait(10)


def test_unknown_key_behind_bastion_hint_uses_jump(connect, ssh_lab, tmp_path):
    from runbook.errors import HostKeyError

    kh = tmp_path / "kh"
    kh.write_text(ssh_lab.bastion.known_hosts_line())
    with pytest.raises(HostKeyError) as err:
        connect(
            spec=HostSpec(name="hidden", address="hidden"),
            ssh_config=str(ssh_lab.ssh_config),
            known_hosts=str(kh),
        )
    assert "-J root@" in err.value.hint and HIDDEN_NAME in err.value.hint


def test_tunnel_reaches_a_port_on_the_host(connect, ssh_lab):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"hello from {self.path} via {self.client_address[0]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        t = connect()
        with t.tunnel("127.0.0.1", httpd.server_address[1]) as (lhost, lport):
            assert lhost == "127.0.0.1" and lport != httpd.server_address[1]
            for i in range(3):
                with urllib.request.urlopen(f"http://{lhost}:{lport}/x{i}", timeout=10) as resp:
                    assert resp.read() == f"hello from /x{i} via 127.0.0.1".encode()
        with pytest.raises(OSError):  # closed with the context
            urllib.request.urlopen(f"http://{lhost}:{lport}/", timeout=5)
        # a port nobody listens on: the local client sees the connection closed, no hang
        with t.tunnel("127.0.0.1", 1) as (lhost, lport), pytest.raises(OSError):
            urllib.request.urlopen(f"http://{lhost}:{lport}/", timeout=10)
    finally:
        httpd.shutdown()


def test_http_client_goes_through_the_tunnel(connect):
    """The executor's HTTP client (runbook.execute.clients.http) over the SSH tunnel."""
    import contextlib

    from runbook.actions import Http
    from runbook.execute.clients.http import http_request

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "healthy"}')

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        t = connect()
        with contextlib.ExitStack() as stack:
            resp = http_request(Http("GET", f"http://127.0.0.1:{httpd.server_address[1]}/health"), t, stack)
        assert resp.status == 200 and resp.body == b'{"status": "healthy"}'
    finally:
        httpd.shutdown()


def test_wrong_key_is_a_clear_error(connect, ssh_lab, tmp_path):
    from tests.fixtures.sshd import generate_key

    stranger = generate_key(tmp_path / "stranger")
    spec = spec_for(ssh_lab.hosts[0], ssh_lab, private_key_file=str(stranger), password="not-shown-pw")
    with pytest.raises(TransportError) as err:
        connect(spec=spec, allow_agent=False)
    msg = str(err.value)
    assert "authentication failed" in msg and str(stranger) in msg and "rejected" in msg
    assert "not-shown-pw" not in msg and "not-shown-pw" not in repr(err.value.__dict__)


def test_connection_refused_is_a_clear_error(connect, ssh_lab):
    spec = spec_for(ssh_lab.hosts[0], ssh_lab, port=1)
    with pytest.raises(TransportError, match=r"cannot connect to 127\.0\.0\.2:1.*refused"):
        connect(spec=spec)


def test_not_an_ssh_server(connect, ssh_lab):
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer():
        c, _ = srv.accept()
        c.sendall(b"HTTP/1.0 400 nope\r\n\r\n")
        c.close()

    threading.Thread(target=answer, daemon=True).start()
    spec = spec_for(ssh_lab.hosts[0], ssh_lab, address="127.0.0.1", port=srv.getsockname()[1])
    with pytest.raises(TransportError, match="handshake"):
        connect(spec=spec, connect_timeout=5)
    srv.close()


def test_a_shell_that_cannot_start_runs_the_first_step_once_on_an_exec_channel(
    connect, ssh_lab, sshd_factory, tmp_path
):
    """The first step goes out right behind the persistent shell's hello; when the hello fails (here
    mktemp, TMPDIR does not exist) the shell exits before reading the step, so the step runs on an
    exec channel instead, exactly once, and so do the steps after it."""
    host = sshd_factory("notmp", extra_config="SetEnv TMPDIR=/nonexistent/runbook-test")
    kh = tmp_path / "known_hosts"
    kh.write_text(host.known_hosts_line())
    t = connect(host, known_hosts=str(kh))
    marker = tmp_path / "ran"
    for i in range(2):
        r = t.run(Command.shell(f"echo step{i} >> {marker}; echo done{i}"))
        assert (r.rc, r.stdout) == (0, f"done{i}\n")
    assert marker.read_text() == "step0\nstep1\n"
    assert t.mode == "exec" and "mktemp" in t._shell_failed


def test_start_up_round_trips_through_a_wan_link(ssh_lab, tmp_path):
    """Through a 400 ms round-trip proxy (bench/wanproxy.py counts the client's turns): connect,
    authenticate, start the shell and run the first step in 6 turns (banner, key exchange, NEWKEYS
    with the service request and the signed auth request, channel open, exec, then the hello with the
    first step), one more per step, one to close."""
    from bench.wanproxy import WanProxy
    from runbook.execute.transports.ssh import SSHTransport

    web1 = ssh_lab.hosts[0]
    proxy = WanProxy(400)  # a long round trip: only a CPU stall of > 200 ms could look like one
    addr = proxy.add(("127.0.0.1", 0), (web1.address, web1.port))
    proxy.start()
    try:
        kh = tmp_path / "known_hosts"
        kh.write_text(web1.known_hosts_line(name=f"[{addr[0]}]:{addr[1]}"))
        spec = spec_for(web1, ssh_lab, address=addr[0], port=addr[1])
        t = SSHTransport(spec, known_hosts=str(kh), ssh_config="/dev/null", allow_agent=False)
        t.connect()
        for i in range(3):
            assert t.run(Command.shell(f"echo {i}")).stdout == f"{i}\n"
        t.close()
        deadline = time.monotonic() + 5
        while not proxy.connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        (conn,) = proxy.connections()
        assert conn["turns"] == 6 + 2 + 1, conn["turn_log"]
    finally:
        proxy.stop()


def test_a_slow_login_shell_does_not_count_against_the_first_steps_timeout(connect, sshd_factory, tmp_path):
    """The first step is sent before the shell has started; its timeout starts once the shell runs
    (here the login shell's rc file takes 2 s, the step 0.3 s of its 1.5 s)."""
    rc = tmp_path / "slow-bashrc"
    rc.write_text("sleep 2\n")
    host = sshd_factory("slowrc", binds={os.path.expanduser("~/.bashrc"): str(rc)})
    kh = tmp_path / "known_hosts"
    kh.write_text(host.known_hosts_line())
    t = connect(host, known_hosts=str(kh))
    r = t.run(Command.shell("sleep 0.3; echo ok"), timeout=1.5)
    assert (r.rc, r.stdout, r.timed_out) == (0, "ok\n", False)
