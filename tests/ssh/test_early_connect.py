"""Early connections (runbook.execute.early): the connects a run makes first thing begin before its
static checks, engine and audit writer are ready; the first step adopts the connection.

A host the run must not reach is a bare listening socket: the kernel completes a TCP handshake into
its backlog whether or not anyone accepts, so ``Listener.connected()`` sees every connect that was
made. A host the run reaches sits behind a delaying proxy (bench/wanproxy.py), which counts the
connections it accepted and logs each once both sides closed."""

from __future__ import annotations

import _thread
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook.errors import RefusedError, ValidationError
from runbook.session import RunRequest
from runbook.session import run as session
from tests.fixtures.sshd import SshdHost, SshLab

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

ROOT = Path(__file__).resolve().parents[2]

STEPS = """name: early
hosts: web
steps:
  - name: one
    shell: echo one
  - name: two
    shell: echo two
"""


@dataclass
class Linked:
    """Lab hosts, each behind its own proxy; the inventory and known_hosts name the proxies."""

    proxy: object
    hosts: dict[str, tuple[str, int]]  # inventory name -> the proxy's address
    servers: dict[str, SshdHost]
    inventory: Path
    known_hosts: Path

    def connections(self, expected: int | None = None) -> dict[str, int]:
        """Connections carried to each host so far (waiting, bounded, until ``expected`` in all)."""
        deadline = time.monotonic() + 10
        while True:
            by_listen = [c["listen"] for c in self.proxy.connections()]
            counts = {h: by_listen.count(f"{a}:{p}") for h, (a, p) in self.hosts.items()}
            if expected is None or sum(counts.values()) >= expected or time.monotonic() > deadline:
                return counts
            time.sleep(0.05)


def _link(lab_hosts: list[SshdHost], key: Path, tmp: Path, rtt_ms: float, inventory_line: str = "") -> Iterator[Linked]:
    from bench.wanproxy import WanProxy

    proxy = WanProxy(rtt_ms)
    hosts = {f"web{i}": proxy.add(("127.0.0.1", 0), (h.address, h.port)) for i, h in enumerate(lab_hosts, 1)}
    proxy.start()
    try:
        kh = tmp / "known_hosts"
        kh.write_text("".join(h.known_hosts_line(name=f"[{a}]:{p}") for h, (a, p) in zip(lab_hosts, hosts.values(), strict=True)))
        inv = tmp / "inv.ini"
        inv.write_text("[web]\n" + "".join(
            f"{n} ansible_host={a} ansible_port={p} ansible_user=root ansible_ssh_private_key_file={key} {inventory_line}\n"
            for n, (a, p) in hosts.items()
        ))  # fmt: skip
        yield Linked(proxy, hosts, dict(zip(hosts, lab_hosts, strict=True)), inv, kh)
    finally:
        proxy.stop()


@pytest.fixture
def linked(ssh_lab: SshLab, tmp_path: Path) -> Iterator[Linked]:
    """web1, web2 of the lab through a 20 ms round-trip proxy each."""
    yield from _link(ssh_lab.hosts[:2], ssh_lab.key, tmp_path, 20)


def request(linked: Linked, tmp: Path, text: str, **kw) -> RunRequest:
    rb = tmp / "early.yml"
    rb.write_text(text)
    kw.setdefault("known_hosts", str(linked.known_hosts))
    return RunRequest(
        rb, inventory=[str(kw.pop("inventory", linked.inventory))], yes=True, audit=False,
        state_root=tmp / "state", **kw,
    )  # fmt: skip


def test_the_first_step_runs_on_the_connection_begun_before_the_checks(linked, tmp_path):
    target = session.prepare(request(linked, tmp_path, STEPS), connect_early=True)
    assert target.connections.started == ["web1", "web2"]
    out = session.execute(target)
    assert out.exit_code == 0, out.message
    assert [s.stdout for s in out.steps("web1")] == ["one\n", "two\n"]
    assert linked.connections(expected=2) == {"web1": 1, "web2": 1}  # one TCP connection per host


class Listener:
    """A TCP port that accepts into its backlog and never answers (a host that must stay untouched)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.seen = 0

    def connected(self) -> int:
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return self.seen
            conn.close()
            self.seen += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def untouched() -> Iterator[Callable[[], Listener]]:
    made: list[Listener] = []

    def make() -> Listener:
        made.append(Listener())
        return made[-1]

    yield make
    for lst in made:
        lst.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outcome(target) -> dict:
    doc = session.execute(target).as_dict()
    for h in doc["hosts"].values():
        for s in h["steps"]:
            s.pop("duration")
    return {"exit_code": doc["exit_code"], "status": doc["status"], "hosts": doc["hosts"]}


@pytest.mark.parametrize("problem", ["nothing listens on its port", "its host key is unknown"])
def test_a_host_that_cannot_be_reached_fails_as_it_does_without_connecting_early(linked, tmp_path, problem):
    extra = {}
    inv = linked.inventory
    if problem == "nothing listens on its port":
        inv = tmp_path / "closed.ini"
        inv.write_text(f"[web]\nweb1 ansible_host=127.0.0.1 ansible_port={_closed_port()} ansible_user=root\n")
    else:
        (tmp_path / "empty_known_hosts").write_text("")
        extra["known_hosts"] = str(tmp_path / "empty_known_hosts")
    req = request(linked, tmp_path, STEPS.replace("hosts: web", "hosts: web1"), inventory=inv, **extra)
    early = session.prepare(req, connect_early=True)
    assert early.connections.started == ["web1"]
    as_early = _outcome(early)
    as_before = _outcome(session.prepare(req))
    assert as_early == as_before
    assert as_early["exit_code"] == 3 and as_early["hosts"]["web1"]["stats"]["unreachable"] == 1
    assert as_early["hosts"]["web1"]["steps"][0]["msg"].startswith("unreachable: host web1: ")
    if problem == "its host key is unknown":  # each run tried once (no second try after the early one)
        assert linked.connections(expected=2)["web1"] == 2


def _no_session_left(server: SshdHost) -> list[int]:
    deadline = time.monotonic() + 10
    while server.session_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.session_pids()


@pytest.fixture
def slow_link(sshd_factory: Callable[..., SshdHost], ssh_lab: SshLab, tmp_path: Path) -> Iterator[Linked]:
    """A server of its own (no other test's sessions) behind a 400 ms round-trip proxy: a connect
    is still under way a good while after it began. Empty rc files: a session cut short while the
    login shell's rc files run would leave whatever they were doing half done (pyenv's rehash lock)."""
    yield from _link([sshd_factory("early", neutralise_rc=True)], ssh_lab.key, tmp_path, 400)


def _all_closed(linked: Linked) -> bool:
    deadline = time.monotonic() + 10
    while len(linked.proxy.connections()) < linked.proxy.accepted() and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(linked.proxy.connections()) == linked.proxy.accepted()


def test_closing_ends_a_connect_under_way_and_leaves_no_session(slow_link, ssh_lab):
    from runbook.execute.transports.base import HostSpec
    from runbook.execute.transports.pool import Connections

    (address, port), server = slow_link.hosts["web1"], slow_link.servers["web1"]
    spec = HostSpec("web1", address, port, "root", private_key_file=str(ssh_lab.key))
    connections = Connections({"known_hosts": str(slow_link.known_hosts), "ssh_config": "/dev/null"})
    connections.start(spec)
    deadline = time.monotonic() + 10
    while not slow_link.proxy.accepted() and time.monotonic() < deadline:  # the handshake is under way
        time.sleep(0.01)
    assert slow_link.proxy.accepted() == 1
    connections.close()
    assert _all_closed(slow_link)
    assert _no_session_left(server) == []
    assert connections.take(spec) is None  # nothing left to adopt: a later use connects anew


def test_a_runbook_that_fails_its_checks_after_the_connects_began_leaves_no_connection(slow_link, tmp_path):
    invalid = STEPS.replace("steps:\n", "preflight:\n  - copy: {content: x, dest: /tmp/never}\nsteps:\n", 1)
    with pytest.raises(ValidationError, match="preflight must be read-only"):
        session.prepare(request(slow_link, tmp_path, invalid), connect_early=True)
    assert _all_closed(slow_link)
    assert _no_session_left(slow_link.servers["web1"]) == []


def test_a_run_refused_after_its_host_was_connected_closes_that_connection(slow_link, tmp_path):
    (tmp_path / "audit-is-a-file").write_text("")
    req = request(slow_link, tmp_path, STEPS).with_options(audit=True, audit_dir=str(tmp_path / "audit-is-a-file"))
    target = session.prepare(req, connect_early=True)
    server = slow_link.servers["web1"]
    deadline = time.monotonic() + 30
    while not server.session_pids() and time.monotonic() < deadline:  # the early connect got there
        time.sleep(0.05)
    assert server.session_pids()
    with pytest.raises(RefusedError, match="audit trail cannot be written"):
        session.execute(target)
    assert _all_closed(slow_link) and slow_link.proxy.accepted() == 1
    assert _no_session_left(server) == []


def _main_thread_in(function: str) -> bool:
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


@pytest.mark.parametrize("when", ["connecting", "adopting"])
def test_ctrl_c_while_the_early_connect_is_under_way_leaves_no_connection(slow_link, tmp_path, when):
    """Ctrl-C once the connect has begun (the run is still setting up, or already past it), or
    while the first step waits for that connect to end: either way nothing stays connected."""

    def interrupt() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if slow_link.proxy.accepted() and (when == "connecting" or _main_thread_in("_adopt")):
                break
            time.sleep(0.005)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        out = session.run(request(slow_link, tmp_path, STEPS))
    except KeyboardInterrupt:  # it landed in the set-up: raised as it is
        assert when == "connecting"
    else:  # it landed in the first step: the run's own way out of an interrupt
        assert out.exit_code == 130
    assert slow_link.proxy.accepted() == 1
    assert _all_closed(slow_link)
    assert _no_session_left(slow_link.servers["web1"]) == []


def _cli(tmp: Path, inventory: Path, known_hosts: Path, text: str, *args: str) -> subprocess.CompletedProcess:
    rb = tmp / "cli.yml"
    rb.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "runbook.cli.main", *args, str(rb), "-i", str(inventory),
         "--known-hosts", str(known_hosts), "--audit-dir", str(tmp / "audit")],
        cwd=tmp, env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("command", [["exec", "--yes", "--output", "json"], ["plan", "--output", "json"]])
def test_a_host_left_out_by_limit_is_never_connected(linked, tmp_path, untouched, command):
    web2 = untouched()
    inv = tmp_path / "limit.ini"
    inv.write_text(linked.inventory.read_text().splitlines()[0] + "\n" + linked.inventory.read_text().splitlines()[1]
                   + f"\nweb2 ansible_host=127.0.0.1 ansible_port={web2.port} ansible_user=root\n")  # fmt: skip
    p = _cli(tmp_path, inv, linked.known_hosts, STEPS, *command, "--limit", "web1")
    assert p.returncode == 0, p.stderr
    assert list(json.loads(p.stdout)["hosts"]) == ["web1"]
    assert web2.connected() == 0
    assert linked.connections(expected=1)["web1"] == 1


@pytest.mark.parametrize(
    "command", [["exec", "--yes", "--output", "json"], ["plan", "--output", "json"], ["exec", "--list-hosts"]]
)
def test_a_run_that_reaches_no_host_connects_nowhere(tmp_path, untouched, command):
    hosts = [untouched(), untouched()]
    inv = tmp_path / "nowhere.ini"
    inv.write_text("[web]\n" + "".join(
        f"web{i} ansible_host=127.0.0.1 ansible_port={h.port} ansible_user=root\n" for i, h in enumerate(hosts, 1)
    ))  # fmt: skip
    (tmp_path / "kh").write_text("")
    skipped = STEPS.replace("shell: echo one", "shell: echo one\n    when: false").replace(
        "shell: echo two", "shell: echo two\n    when: false"
    )
    p = _cli(tmp_path, inv, tmp_path / "kh", skipped, *command)
    assert p.returncode == 0, p.stderr
    assert [h.connected() for h in hosts] == [0, 0]
