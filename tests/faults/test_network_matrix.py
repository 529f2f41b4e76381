"""A host that stops answering mid-step, over real SSH: its sshd frozen (SIGSTOP on the server and
every session it forked: the kernel still ACKs, nothing answers), or the network to it turned into a
blackhole (a TCP proxy of the test's own that keeps every connection open and forwards nothing).

The run has changed a file, then runs `sleep` on the host when it freezes. What the safety net says
(docs/fault-matrix.md): every wait on a network is bounded, so the run must end by itself (the step
failed, rollback given up on the unreachable host: exit 4, naming it), with its JSON document; once
the host answers again, `runbook rollback --run ID` must restore the file exactly.

Both scenarios run at once (each against its own sshd): the wait is the transport's bound, not work.
``BOUND`` is the safety net past which the run is taken as hung (killed, and the test fails).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import MATRIX, REPO, Outcome
from tests.fixtures.sshd import SshdHost

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

BOUND = 75.0  # seconds: 3 missed 15 s keepalives, a reconnect attempt and the rollback's, with room

RUNBOOK = textwrap.dedent(
    """\
    name: net-fault
    hosts: all
    steps:
      - name: Write the config
        copy: {content: "new\\n", dest: "{{ conf }}", mode: "0644"}
      - name: A command the host freezes in
        shell: "sleep 3"
      - name: After it
        shell: "true"
    rollback: auto
    """
)


class Blackhole:
    """127.0.0.1:port -> target; ``drop()`` makes it swallow everything (connections stay open,
    new ones are accepted), ``restore()`` forwards again for new connections."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.dropping = threading.Event()
        self.stop = threading.Event()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        self.srv.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._pipe, args=(c,), daemon=True)
            t.start()

    def _pipe(self, c: socket.socket) -> None:
        try:
            up = socket.create_connection(self.target, timeout=5)
        except OSError:
            c.close()
            return
        socks = [c, up]
        while not self.stop.is_set():
            r, _, _ = select.select(socks, [], [], 0.2)
            for s in r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    c.close(), up.close()
                    return
                if not self.dropping.is_set():
                    (up if s is c else c).sendall(data)
        c.close(), up.close()

    def close(self) -> None:
        self.stop.set()
        self.srv.close()


def scenario(root: Path, host: SshdHost, key: Path, address: str, port: int, freeze: Callable[[], None],
             thaw: Callable[[], None], name: str) -> dict[str, Any]:  # fmt: skip
    """Run the runbook against the host, freeze it as the sleep starts, wait for the run to end
    (bounded by BOUND), thaw it, roll back; what happened."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "playbooks").mkdir(exist_ok=True)
    (root / "playbooks" / "net-fault.yml").write_text(RUNBOOK)
    conf = root / "app.conf"
    conf.write_text("old\n")
    kh = root / "known_hosts"
    kh.write_text(host.known_hosts_line(name=f"[{address}]:{port}" if port != 22 else address))
    (root / "hosts.ini").write_text(
        f"[all]\nnet ansible_host={address} ansible_port={port} ansible_user=root ansible_ssh_private_key_file={key}\n"
    )
    env = {**os.environ, "RUNBOOK_PATH": str(root / "playbooks"), "PYTHONPATH": str(REPO)}
    audit = root / "audit"

    def cli(*args: str) -> list[str]:
        return [sys.executable, "-m", "runbook.cli.main", *args, "net-fault", "-e", json.dumps({"conf": str(conf)}),
                "--known-hosts", str(kh), "--yes", "--output", "json", "--audit-dir", str(audit)]  # fmt: skip

    # the JSON document on stdout, the console (text, which may hold braces too) on stderr
    out, err = open(root / "run.out", "wb"), open(root / "run.err", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*cli("exec"), "-i", str(root / "hosts.ini")], cwd=root, env=env, stdout=out,
                            stderr=err, stdin=subprocess.DEVNULL)  # fmt: skip
    while not any(
        '"step.start"' in line and "freezes in" in line
        for f in audit.glob("*.jsonl")
        for line in f.read_text().splitlines()
    ):
        if proc.poll() is not None:
            raise AssertionError(
                f"{name}: the run ended before the freeze: {(root / 'run.err').read_text()[-1500:]}"
            )
        time.sleep(0.02)
    freeze()
    t_frozen = time.monotonic()
    hung = False
    try:
        proc.wait(timeout=BOUND)
    except subprocess.TimeoutExpired:
        hung = True
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ended_after = time.monotonic() - t_frozen
    out.close(), err.close()
    thaw()
    text = (root / "run.out").read_text()
    console = (root / "run.err").read_text()
    run_id = json.loads(next(iter(audit.glob("*.jsonl"))).read_text().splitlines()[0])["run_id"]
    t_thaw = time.monotonic()
    back = subprocess.run([*cli("rollback"), "--run", run_id], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    restored_after = time.monotonic() - t_thaw
    return {"rc": proc.returncode, "hung": hung, "ended_after": ended_after, "output": text, "console": console,
            "rollback_rc": back.returncode, "rollback_out": back.stdout[-1500:] + back.stderr[-500:],
            "conf": conf.read_text(), "restored_after": restored_after}  # fmt: skip


def judge(name: str, r: dict[str, Any]) -> list[str]:
    problems = []
    if r["hung"]:
        problems.append(f"{name}: the run did not end within {BOUND:g}s of the freeze (killed)")
    else:
        try:
            doc = json.loads(r["output"])
        except ValueError:
            doc = None
        if doc is None or "Traceback" in r["console"]:
            problems.append(f"{name}: exit {r['rc']} without a JSON document: {r['console'][-800:]}")
        elif r["rc"] != 4 or doc.get("status") != "rollback_failed" or "unreachable" not in doc.get("message", ""):
            problems.append(f"{name}: exit {r['rc']} ({doc.get('status')}), expected 4 naming the unreachable host: {doc.get('message')}")
    if r["rollback_rc"] != 0 or r["conf"] != "old\n":
        problems.append(
            f"{name}: after the thaw, rollback exit {r['rollback_rc']}, app.conf {r['conf']!r}: {r['rollback_out']}"
        )
    MATRIX.append(Outcome("net-fault", "ssh", name, "network", "rollback", not problems, r["rc"],
                          round(r["ended_after"] + r["restored_after"], 2),
                          "; ".join(problems)[:600] or f"the run ended {r['ended_after']:.1f}s after the freeze, exit {r['rc']}").row())  # fmt: skip
    return problems


def test_a_frozen_sshd_and_a_blackhole_end_the_run_then_rollback_restores(
    sshd_factory, ssh_lab, tmp_path: Path
) -> None:
    frozen_host = sshd_factory("frozen")
    holed_host = sshd_factory("holed")
    hole = Blackhole((holed_host.address, holed_host.port))

    def freeze() -> None:
        for pid in [frozen_host.pid, *frozen_host.session_pids()]:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass

    def thaw() -> None:
        for pid in [frozen_host.pid, *frozen_host.session_pids()]:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    try:
        with ThreadPoolExecutor(2) as pool:
            a = pool.submit(scenario, tmp_path / "frozen", frozen_host, ssh_lab.key, frozen_host.address,
                            frozen_host.port, freeze, thaw, "frozen sshd")  # fmt: skip
            b = pool.submit(scenario, tmp_path / "holed", holed_host, ssh_lab.key, "127.0.0.1", hole.port,
                            hole.dropping.set, hole.dropping.clear, "blackholing TCP proxy")  # fmt: skip
            results = {"frozen sshd": a.result(), "blackholing TCP proxy": b.result()}
    finally:
        thaw()
        hole.close()
    problems = [p for name, r in results.items() for p in judge(name, r)]
    assert not problems, "\n".join(problems)
