"""Fast checks of the SSH transport's pure parts (no sshd): ssh_config resolution, ProxyJump parsing,
known_hosts matching, the shell text the persistent shell is sent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runbook.actions.commands import Command
from runbook.errors import TransportError
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.hostkeys import Entry, KnownHosts, host_pattern, trust_command
from runbook.execute.transports.pshell import kill_script, printf_octal
from runbook.execute.transports.ssh_config import jump_from_args, parse_jump, resolve
from runbook.execute.transports.ssh_exec import become_body, plain_body

REPO = Path(__file__).resolve().parents[2]


def test_parse_jump():
    assert parse_jump("bastion") == [(None, "bastion", None)]
    assert parse_jump("ops@b1:2222,ssh://root@b2:22") == [("ops", "b1", 2222), ("root", "b2", 22)]
    assert parse_jump("[::1]:2200") == [(None, "::1", 2200)]
    with pytest.raises(TransportError, match="ProxyJump"):
        parse_jump("a,,b")


@pytest.mark.parametrize(
    "args",
    [
        "-J ops@bastion:22",
        "-o ProxyJump=ops@bastion:22",
        "-oProxyJump=ops@bastion:22",
        "-C -o 'ProxyJump ops@bastion:22'",
    ],
)
def test_jump_from_ansible_args(args):
    assert jump_from_args({"ansible_ssh_common_args": args}) == "ops@bastion:22"


def test_resolve_with_ssh_config(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text(
        "Host app\n  HostName 10.0.0.5\n  User deploy\n  Port 2200\n  IdentityFile ~/.ssh/app_key\n"
        "  ProxyJump gw\n"
        "Host gw\n  HostName gw.example.com\n  User jump\n  ProxyJump edge\n"
        "Host edge\n  HostName 203.0.113.1\n  Port 443\n"
        "Host *\n  UserKnownHostsFile ~/.ssh/kh_a ~/.ssh/kh_b\n  StrictHostKeyChecking accept-new\n"
    )
    ep = resolve(HostSpec(name="web", address="app"), str(cfg))
    assert (ep.hostname, ep.port, ep.user) == ("10.0.0.5", 2200, "deploy")
    assert ep.identity_files[0].endswith("/.ssh/app_key")
    assert [(j.hostname, j.port, j.user) for j in ep.jumps] == [
        ("203.0.113.1", 443, ep.jumps[0].user),
        ("gw.example.com", 22, "jump"),
    ]
    assert [p.rsplit("/", 1)[1] for p in ep.known_hosts_files] == ["kh_a", "kh_b"]
    assert ep.strict_host_key_checking == "accept-new"
    # inventory variables win over ssh_config
    ep = resolve(HostSpec(name="web", address="app", port=22, user="root", private_key_file="/k"), str(cfg))
    assert (ep.port, ep.user, ep.identity_files[0]) == (22, "root", "/k")


def test_match_exec_in_ssh_config_still_works(tmp_path):
    # paramiko is imported without `invoke` (it costs more than half of `import paramiko`);
    # a config that needs it for `Match exec` gets it when it is loaded
    cfg = tmp_path / "config"
    cfg.write_text(
        'Match host app exec "test -d /"\n  HostName 10.0.0.7\n'
        'Match host app exec "test -d /no/such/dir"\n  Port 2222\n'
    )
    code = (
        "import sys\n"
        "from runbook.execute.transports.base import HostSpec\n"
        "from runbook.execute.transports.ssh_config import resolve\n"
        "ep = resolve(HostSpec(name='web', address='app'), sys.argv[1])\n"
        "print(ep.hostname, ep.port)\n"
    )  # a subprocess: invoke runs the exec commands with stdin attached, which pytest forbids
    out = subprocess.run(
        [sys.executable, "-c", code, str(cfg)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["10.0.0.7", "22"], out.stderr


def test_paramiko_is_imported_without_invoke():
    code = (
        "import sys\n"
        "from runbook.execute.transports.paramiko_import import load_paramiko\n"
        "p = load_paramiko()\n"
        "assert p.SSHClient and 'invoke' not in sys.modules and 'unittest.mock' not in sys.modules\n"
        "import invoke  # still importable by anyone who wants it\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_proxyjump_loop_is_an_error(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    with pytest.raises(TransportError, match="loop"):
        resolve(HostSpec(name="a", address="a"), str(cfg))


def test_known_hosts_matching(tmp_path):
    e = Entry("f", 1, ("*.example.com", "!bad.example.com", "[10.0.0.1]:2222"), "ssh-ed25519", b"k")
    assert e.matches("web.example.com") and not e.matches("bad.example.com")
    assert e.matches("[10.0.0.1]:2222") and not e.matches("10.0.0.1")
    assert host_pattern("h", 22) == "h" and host_pattern("h", 2222) == "[h]:2222"
    kh = tmp_path / "kh"
    kh.write_text("garbage line\n@cert-authority *.x ssh-ed25519 AAAA\nh ssh-rsa AAAA\n")
    k = KnownHosts([str(kh)])
    assert [x.key_type for x in k.entries] == ["ssh-ed25519", "ssh-rsa"]
    assert k.preferred_algorithms(["h"], ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"))[:2] == (
        "rsa-sha2-512",
        "rsa-sha2-256",
    )
    assert trust_command("h", 2222, "ssh-ed25519", "/kh") == "ssh-keyscan -p 2222 -t ed25519 h >> /kh"


def test_printf_octal_roundtrip(tmp_path):
    data = bytes(range(256)) * 40 + b"'%\\"
    target = tmp_path / "out"
    subprocess.run(["/bin/sh", "-c", printf_octal(data, str(target), chunk=1000)], check=True)
    assert target.read_bytes() == data


def test_secrets_never_in_plain_text():
    cmd = Command.shell("id", env={"TOKEN": "t0ken"})
    body = become_body(cmd, "root", how="sudo", password="hunter2'x", persistent=True, has_stdin=False)
    assert "hunter2" not in body  # only as printf octal escapes
    assert "sudo -n -H -u root" in body and "sudo -S -p ''" in body
    assert "export TOKEN=t0ken" in plain_body(cmd)
    with pytest.raises(ValueError):
        kill_script(1, "TERM", True)
    with pytest.raises(ValueError):
        plain_body(Command.shell("x", env={"BAD-NAME": "1"}))


@pytest.mark.parametrize("how", ["sudo", "su"])
@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("password", [None, "pw 'x\"$y"])
def test_become_bodies_are_valid_sh(how, persistent, password):
    cmd = Command.shell("echo \"$A\" 'q'; exit 3", env={"A": "1 2"}, cwd="/tmp/a b")
    body = become_body(
        cmd,
        "postgres",
        how=how,
        password=password,
        persistent=persistent,
        has_stdin=True,
        password_needed=True,
    )
    subprocess.run(["/bin/sh", "-n", "-c", body], check=True)
    subprocess.run(["/bin/sh", "-n", "-c", plain_body(cmd)], check=True)
