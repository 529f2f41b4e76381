"""End to end over SSH: `runbook exec` (the CLI, as a subprocess) against real sshd hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.sshd import HIDDEN_NAME, SshdHost, write_inventory

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "runbook.cli.main", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, dict, str]:
    p = _cli(args, cwd)
    out, err = p.communicate(timeout=timeout)
    try:
        doc = json.loads(out)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON on stdout (rc {p.returncode}):\n{out}\n{err}")
    return p.returncode, doc, err


def exec_args(rb: Path, inv: Path, kh: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        "exec",
        str(rb),
        "-i",
        str(inv),
        "--yes",
        "--output",
        "json",
        "--known-hosts",
        str(kh),
        "--audit-dir",
        str(tmp / "audit"),
        *extra,
    ]


def _steps(doc: dict, host: str) -> list[dict]:
    return doc["hosts"][host]["steps"]


def test_parallel_hosts_with_files(ssh_lab, tmp_path):
    inv = write_inventory(tmp_path / "inv.ini", ssh_lab.hosts, ssh_lab.key)
    d = tmp_path / "out"
    rb = tmp_path / "fleet.yml"
    rb.write_text(
        f"""name: fleet
hosts: web
vars: {{d: "{d}"}}
steps:
  - name: where am I
    shell: 'set -- $SSH_CONNECTION; echo "$3:$4"'
  - name: write config
    copy: {{content: "host={{{{ inventory_hostname }}}}\\n", dest: "{{{{ d }}}}/{{{{ inventory_hostname }}}}.conf", mode: "0600"}}
  - name: read it back
    shell: 'cat {{{{ d }}}}/{{{{ inventory_hostname }}}}.conf'
"""
    )
    rc, doc, err = run_cli(exec_args(rb, inv, ssh_lab.known_hosts, tmp_path), tmp_path)
    assert rc == 0, err
    for h in ssh_lab.hosts:
        steps = _steps(doc, h.name)
        assert steps[0]["stdout"].strip() == f"{h.address}:{h.port}"
        assert steps[2]["stdout"] == f"host={h.name}\n"
        assert (d / f"{h.name}.conf").stat().st_mode & 0o777 == 0o600


def test_bastion_host(ssh_lab, tmp_path):
    b = ssh_lab.bastion
    inv = tmp_path / "inv.ini"
    inv.write_text(
        f"[internal]\nhidden ansible_host={HIDDEN_NAME} ansible_port={ssh_lab.hidden.port} ansible_user=root "
        f"ansible_ssh_private_key_file={ssh_lab.key} "
        f"ansible_ssh_common_args='-o ProxyJump=root@{b.address}:{b.port}'\n"
    )
    rb = tmp_path / "jump.yml"
    rb.write_text("name: jump\nhosts: internal\nsteps:\n  - shell: 'set -- $SSH_CONNECTION; echo $3'\n")
    rc, doc, err = run_cli(exec_args(rb, inv, ssh_lab.known_hosts, tmp_path), tmp_path)
    assert rc == 0, err
    assert _steps(doc, "hidden")[0]["stdout"].strip() == ssh_lab.hidden.address


def test_unknown_host_key_fails_only_that_host(ssh_lab, tmp_path):
    web1, web2, web3 = ssh_lab.hosts
    kh = tmp_path / "known_hosts"
    kh.write_text(web1.known_hosts_line() + web3.known_hosts_line())
    inv = write_inventory(tmp_path / "inv.ini", ssh_lab.hosts, ssh_lab.key)
    rb = tmp_path / "hk.yml"
    rb.write_text("name: hk\nhosts: web\nsteps:\n  - shell: echo ok\n")
    rc, doc, err = run_cli(exec_args(rb, inv, kh, tmp_path), tmp_path)
    assert rc != 0
    bad = doc["hosts"]["web2"]
    text = json.dumps(bad)
    assert bad["failed"] and "SHA256:" in text and "ssh-keyscan" in text, text
    assert not doc["hosts"]["web1"]["failed"] and not doc["hosts"]["web3"]["failed"]
    assert kh.read_text() == web1.known_hosts_line() + web3.known_hosts_line()
    # --trust-new-hosts records it and the run passes
    rc, doc, err = run_cli(exec_args(rb, inv, kh, tmp_path, "--trust-new-hosts"), tmp_path)
    assert rc == 0, err
    assert web2.known_hosts_line() in kh.read_text()


@pytest.fixture
def fleet(sshd_factory, ssh_lab, tmp_path) -> tuple[list[SshdHost], Path, Path]:
    hosts = [sshd_factory(f"node{i}") for i in range(1, 4)]
    kh = tmp_path / "known_hosts"
    kh.write_text("".join(h.known_hosts_line() for h in hosts))
    inv = write_inventory(tmp_path / "inv.ini", hosts, ssh_lab.key)
    return hosts, kh, inv


def test_killed_sshd_mid_run(fleet, tmp_path):
    hosts, kh, inv = fleet
    victim = hosts[1]
    d = tmp_path / "data"
    d.mkdir()
    for h in hosts:
        (d / f"{h.name}.conf").write_text("old\n")
    rb = tmp_path / "killed.yml"
    rb.write_text(
        f"""name: killed
hosts: web
rollback_scope: all
vars: {{d: "{d}"}}
steps:
  - name: change config
    copy: {{content: "new\\n", dest: "{{{{ d }}}}/{{{{ inventory_hostname }}}}.conf"}}
  - name: slow on the victim
    shell: 'touch {{{{ d }}}}/{{{{ inventory_hostname }}}}.ready; if [ {{{{ inventory_hostname }}}} = {victim.name} ]; then sleep 120; fi'
  - name: finish
    shell: echo done
"""
    )
    p = _cli(exec_args(rb, inv, kh, tmp_path), tmp_path)
    deadline = time.monotonic() + 120
    while not (d / f"{victim.name}.ready").exists():
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.05)
    victim.kill()
    out, err = p.communicate(timeout=120)
    doc = json.loads(out)
    v = doc["hosts"][victim.name]
    assert v["failed"] and "connection to" in v["failure"] and "lost while running" in v["failure"], v
    assert doc["exit_code"] == p.returncode != 0
    # the hosts that changed were rolled back (rollback_scope: all); the victim could not be
    for h in hosts:
        if h is not victim:
            assert (d / f"{h.name}.conf").read_text() == "old\n", h.name
    assert (d / f"{victim.name}.conf").read_text() == "new\n"
    assert victim.name in err or victim.name in doc.get("message", "")


def test_serial_with_max_fail_percentage(fleet, tmp_path):
    hosts, kh, inv = fleet
    d = tmp_path / "marks"
    d.mkdir()
    rb = tmp_path / "serial.yml"
    rb.write_text(
        f"""name: serial
hosts: web
serial: 1
max_fail_percentage: 0
vars: {{d: "{d}"}}
steps:
  - shell: 'touch {{{{ d }}}}/{{{{ inventory_hostname }}}}; test {{{{ inventory_hostname }}}} != {hosts[0].name}'
"""
    )
    rc, doc, _err = run_cli(exec_args(rb, inv, kh, tmp_path), tmp_path)
    assert rc != 0
    assert doc["hosts"][hosts[0].name]["failed"]
    assert sorted(os.listdir(d)) == [hosts[0].name]  # the canary failed: nobody else was touched


def test_dropped_connection_is_retried_on_a_new_connection(fleet, tmp_path):
    """A connection dropped mid-step fails that attempt clearly; the step's retries reconnect."""
    hosts, kh, inv = fleet
    victim = hosts[0]
    d = tmp_path / "data"
    d.mkdir()
    rb = tmp_path / "retry.yml"
    rb.write_text(
        f"""name: retry
hosts: {victim.name}
vars: {{d: "{d}"}}
steps:
  - name: flaky
    shell: 'if [ ! -e {{{{ d }}}}/first ]; then touch {{{{ d }}}}/first; sleep 120; fi; echo second try'
    retries: 2
    delay: 0.2
"""
    )
    p = _cli(exec_args(rb, inv, kh, tmp_path), tmp_path)
    deadline = time.monotonic() + 120
    while not (d / "first").exists():
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.05)
    assert victim.kill_sessions()  # the connection drops; sshd itself keeps listening
    out, err = p.communicate(timeout=120)
    doc = json.loads(out)
    assert p.returncode == 0, (doc, err)
    [step] = _steps(doc, victim.name)
    assert step["attempts"] == 2 and step["stdout"].strip() == "second try"
