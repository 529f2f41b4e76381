"""`runbook exec` with a host that freezes: the run ends, the other host rolls back, and the frozen
one is reported (exit 4, named) — its rollback gives up after a bounded time. Ctrl-C twice aborts
at once with the state saved and the audit sealed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.blackhole import Blackhole

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

ROOT = Path(__file__).resolve().parents[2]
FAST = "-o ServerAliveInterval=1 -o ServerAliveCountMax=2 -o ConnectTimeout=3"

RUNBOOK = """name: frozen
hosts: web
vars: {{d: "{d}"}}
steps:
  - name: config
    copy: {{content: "new\\n", dest: "{{{{ d }}}}/{{{{ inventory_hostname }}}}.conf"}}
  - name: work
    shell: |
      if [ {{{{ inventory_hostname }}}} = good ]; then sleep 1; exit 3; fi
      touch {{{{ d }}}}/started; sleep 120
"""


def _inventory(path: Path, rows: list[tuple[str, str, int]], key: Path) -> Path:
    lines = ["[web]"] + [
        f"{n} ansible_host={a} ansible_port={p} ansible_user=root ansible_ssh_private_key_file={key} "
        f"ansible_ssh_common_args='{FAST}'"
        for n, a, p in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "RUNBOOK_AUDIT": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "runbook", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    for _ in range(1200):
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"runbook ended early: {proc.communicate()}")
        time.sleep(0.025)
    raise AssertionError(f"{path} never appeared")


@pytest.fixture
def two_hosts(ssh_lab, sshd_factory, tmp_path):
    good = ssh_lab.hosts[1]
    frozen_sshd = sshd_factory(name="frozen")
    proxy = Blackhole(frozen_sshd.address, frozen_sshd.port)
    kh = tmp_path / "known_hosts"
    kh.write_text(good.known_hosts_line() + frozen_sshd.known_hosts_line(name=f"[127.0.0.1]:{proxy.port}"))
    d = tmp_path / "d"
    d.mkdir()
    for n in ("good", "frozen"):
        (d / f"{n}.conf").write_text("old\n")
    inv = _inventory(
        tmp_path / "inv.ini", [("good", good.address, good.port), ("frozen", "127.0.0.1", proxy.port)], ssh_lab.key
    )
    rb = tmp_path / "frozen.yml"
    rb.write_text(RUNBOOK.format(d=d))
    try:
        yield rb, inv, kh, d, proxy
    finally:
        proxy.close()


@pytest.mark.timeout(120)
def test_rollback_over_a_frozen_host_gives_up_on_it_and_the_other_host_rolls_back(two_hosts, tmp_path):
    rb, inv, kh, d, proxy = two_hosts
    proc = _start(
        ["exec", str(rb), "-i", str(inv), "--yes", "--output", "json", "--known-hosts", str(kh),
         "--audit-dir", str(tmp_path / "audit")],
        tmp_path,
    )  # fmt: skip
    _wait_for(d / "started", proc)
    proxy.freeze()
    out, err = proc.communicate(timeout=100)
    assert proc.returncode == 4, out + err
    doc = json.loads(out)
    assert "ROLLBACK FAILED on frozen" in doc["message"] and "unreachable" in doc["message"]
    assert (d / "good.conf").read_text() == "old\n"  # the other host rolled back
    assert (d / "frozen.conf").read_text() == "new\n"  # could not be reached: reported, not undone
    undo = [s for s in doc["hosts"]["frozen"]["steps"] if s["phase"] == "rollback"]
    assert undo and all(s["outcome"] == "failed" for s in undo)


@pytest.mark.timeout(120)
def test_ctrl_c_twice_aborts_at_once_with_the_state_saved_and_the_audit_sealed(two_hosts, tmp_path):
    rb, inv, kh, d, proxy = two_hosts
    # keepalives off: only the second Ctrl-C can end the wait on the frozen host quickly
    inv.write_text(inv.read_text().replace(FAST, "-o ServerAliveInterval=0 -o ConnectTimeout=60"))
    proc = _start(
        ["exec", str(rb), "-i", str(inv), "--yes", "--output", "json", "--known-hosts", str(kh),
         "--audit-dir", str(tmp_path / "audit")],
        tmp_path,
    )  # fmt: skip
    _wait_for(d / "started", proc)
    proxy.freeze()
    time.sleep(2)  # the good host has failed and rolled back; the frozen one waits on a silent peer
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(1)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    doc = json.loads(out)
    assert doc["status"] == "interrupted" and "aborted" in doc["message"], doc["message"]
    assert "Traceback" not in err
    (state,) = (tmp_path / ".runbook").rglob("state.json")
    saved = json.loads(state.read_text())
    assert "frozen" in json.dumps(saved) and "config" in json.dumps(saved)
    (trail,) = (tmp_path / "audit").glob("*.jsonl")
    verify = _start(["audit", "verify", str(trail), "--allow-unsigned"], tmp_path)
    vout, verr = verify.communicate(timeout=60)
    assert verify.returncode == 0, vout + verr


BOTH_LONG = """name: frozen
hosts: web
lock: deploy
vars: {{d: "{d}"}}
steps:
  - name: config
    copy: {{content: "new\\n", dest: "{{{{ d }}}}/{{{{ inventory_hostname }}}}.conf"}}
  - name: work
    shell: "touch {{{{ d }}}}/started-{{{{ inventory_hostname }}}}; sleep 120"
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lock", [True, False])
def test_runbook_rollback_of_a_killed_run_with_a_frozen_host_exits_4_naming_it(two_hosts, tmp_path, lock):
    rb, inv, kh, d, proxy = two_hosts
    rb.write_text(BOTH_LONG.format(d=d).replace("lock: deploy\n", "lock: deploy\n" if lock else ""))
    args = ["--known-hosts", str(kh), "--audit-dir", str(tmp_path / "audit")]
    proc = _start(["exec", str(rb), "-i", str(inv), "--yes", *args], tmp_path)
    _wait_for(d / "started-good", proc)
    _wait_for(d / "started-frozen", proc)
    proc.kill()  # a crashed control machine: nothing rolled back
    proc.communicate()
    proxy.freeze()
    (run_id,) = [p.name for p in (tmp_path / ".runbook" / "runs").iterdir()]
    rollback = _start(["rollback", str(rb), "--run", run_id, "--yes", "--output", "json", *args], tmp_path)
    out, err = rollback.communicate(timeout=100)
    assert rollback.returncode == 4, out + err
    assert "rollback FAILED on frozen" in json.loads(out)["message"]
    assert (d / "good.conf").read_text() == "old\n"
    assert (d / "frozen.conf").read_text() == "new\n"


@pytest.mark.timeout(120)
def test_ctrl_c_with_a_frozen_host_rolls_back_the_other_and_names_the_frozen_one(two_hosts, tmp_path):
    rb, inv, kh, d, proxy = two_hosts
    rb.write_text(BOTH_LONG.format(d=d).replace("lock: deploy\n", ""))
    proc = _start(
        ["exec", str(rb), "-i", str(inv), "--yes", "--output", "json", "--known-hosts", str(kh),
         "--audit-dir", str(tmp_path / "audit")],
        tmp_path,
    )  # fmt: skip
    _wait_for(d / "started-good", proc)
    _wait_for(d / "started-frozen", proc)
    proxy.freeze()
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=100)
    assert proc.returncode == 130, out + err
    msg = json.loads(out)["message"]
    assert "rolled back good" in msg and "ROLLBACK FAILED on frozen" in msg, msg
    assert (d / "good.conf").read_text() == "old\n"
    assert (d / "frozen.conf").read_text() == "new\n"
