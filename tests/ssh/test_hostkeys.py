"""Strict host-key checking: unknown and changed keys, trust-new-hosts, hashed entries."""

from __future__ import annotations

import subprocess

import pytest

from runbook.actions.commands import Command
from runbook.errors import HostKeyError
from runbook.execute.transports.hostkeys import KnownHosts, fingerprint, parse_known_hosts
from tests.fixtures.sshd import generate_key
from tests.ssh.conftest import spec_for

pytestmark = [pytest.mark.slow, pytest.mark.ssh]


def _openssh_fingerprint(host) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(host.dir / "ssh_host_ed25519_key.pub")], capture_output=True, text=True
    ).stdout
    return out.split()[1]


def test_unknown_host_key_names_fingerprint_and_command(connect, ssh_lab, tmp_path):
    host = ssh_lab.hosts[1]
    kh = tmp_path / "known_hosts"
    kh.write_text(ssh_lab.hosts[0].known_hosts_line())  # some other host only
    with pytest.raises(HostKeyError) as err:
        connect(host, known_hosts=str(kh))
    e = err.value
    fp = _openssh_fingerprint(host)
    assert fp.startswith("SHA256:") and fp in e.message and "ssh-ed25519" in e.message
    assert "unknown host key" in e.message and host.name in e.message
    assert f"ssh-keyscan -p {host.port} -t ed25519 {host.address} >> {kh}" in e.hint
    assert "--trust-new-hosts" in e.hint
    # the suggested command really produces the right line
    cmd = f"ssh-keyscan -p {host.port} -t ed25519 {host.address}"
    scanned = subprocess.run(cmd.split(), capture_output=True, text=True).stdout
    assert host.host_key_pub.split()[1] in scanned
    assert kh.read_text() == ssh_lab.hosts[0].known_hosts_line()  # nothing recorded


def test_changed_key_is_refused_even_with_trust_new(connect, ssh_lab, tmp_path):
    host = ssh_lab.hosts[0]
    other = generate_key(tmp_path / "imposter")
    imposter = (tmp_path / "imposter.pub").read_text().split()[1]
    kh = tmp_path / "known_hosts"
    kh.write_text(
        f"# comment\n{ssh_lab.hosts[1].known_hosts_line()}{host.known_hosts_name} ssh-ed25519 {imposter}\n"
    )
    before = kh.read_text()
    for trust in (False, True):
        with pytest.raises(HostKeyError) as err:
            connect(host, known_hosts=str(kh), trust_new_hosts=trust)
        msg = err.value.message
        assert "HOST KEY CHANGED" in msg and "man-in-the-middle" in msg
        assert f"{kh}:3" in msg  # which known_hosts line
        assert _openssh_fingerprint(host) in msg
        assert "ssh-keygen -R" in err.value.hint
    assert kh.read_text() == before
    assert other.exists()


@pytest.mark.parametrize("how", ["option", "inventory-var"])
def test_trust_new_hosts_records_the_key(connect, ssh_lab, tmp_path, how):
    host = ssh_lab.hosts[2]
    kh = tmp_path / "sub" / "known_hosts"
    if how == "option":
        t = connect(host, known_hosts=str(kh), trust_new_hosts=True)
    else:
        spec = spec_for(host, ssh_lab, vars={"runbook_trust_new_hosts": "yes"})
        t = connect(spec=spec, known_hosts=str(kh))
    assert t.run(Command.shell("echo in")).stdout == "in\n"
    assert kh.read_text() == host.known_hosts_line()
    assert oct(kh.stat().st_mode & 0o777) == "0o600"
    t.close()
    # next time strict checking passes with the recorded key, and nothing is added twice
    t2 = connect(host, known_hosts=str(kh))
    assert t2.run(Command.shell("echo again")).stdout == "again\n"
    assert kh.read_text() == host.known_hosts_line()


def test_hashed_and_wildcard_entries(connect, ssh_lab, tmp_path):
    a, b = ssh_lab.hosts[0], ssh_lab.hosts[1]
    kh = tmp_path / "known_hosts"
    pattern = f"[127.0.0.*]:{b.port}"
    kh.write_text(a.known_hosts_line(hashed=True) + f"{pattern},!nothing {b.host_key_pub}\n")
    assert connect(a, known_hosts=str(kh)).run(Command.shell("echo a")).stdout == "a\n"
    assert connect(b, known_hosts=str(kh)).run(Command.shell("echo b")).stdout == "b\n"


def test_revoked_key_is_refused(connect, ssh_lab, tmp_path):
    host = ssh_lab.hosts[0]
    kh = tmp_path / "known_hosts"
    kh.write_text(host.known_hosts_line() + f"@revoked * {host.host_key_pub}\n")
    with pytest.raises(HostKeyError, match="revoked"):
        connect(host, known_hosts=str(kh), trust_new_hosts=True)


def test_parser_matches_openssh_fingerprint(ssh_lab):
    entries = parse_known_hosts(str(ssh_lab.known_hosts))
    assert fingerprint(entries[0].blob) == _openssh_fingerprint(ssh_lab.hosts[0])
    kh = KnownHosts([str(ssh_lab.known_hosts)])
    name = ssh_lab.hosts[0].known_hosts_name
    assert kh.preferred_algorithms([name], ("ssh-rsa", "ssh-ed25519"))[0] == "ssh-ed25519"
