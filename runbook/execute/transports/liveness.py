"""Dead-peer detection for SSH connections, as OpenSSH's ServerAliveInterval / ServerAliveCountMax.

A server that stops answering (its sshd frozen, a firewall that starts dropping packets, a host that
hangs) leaves TCP quiet: the kernel still ACKs, keepalives of the socket pass, and every wait on the
connection (a step's output, sftp, a channel being opened, a tunnel) would last forever. So: when
nothing has arrived from the server for ``interval`` seconds, send it a ``keepalive@openssh.com``
global request *with* want-reply (every SSH server answers, if only with a failure); after
``count_max`` intervals without a single packet from it, the connection is declared dead and closed,
which ends every wait on it (they see a closed channel and raise ShellLost / TransportError).

One monitor thread per process watches every live connection (jump hosts included): the watch costs
nothing while packets flow.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

TICK = 0.25  # seconds between checks (the detection is never finer than this)
DEFAULT_INTERVAL = 15.0
DEFAULT_COUNT_MAX = 3


@dataclass(eq=False)
class Watch:
    """One paramiko Transport under watch."""

    transport: Any
    interval: float
    count_max: int
    label: str
    last_rx: float = field(default_factory=time.monotonic)
    last_probe: float = 0.0
    dead: str | None = None  # why it was declared dead
    _sending: bool = False

    def received(self) -> None:
        self.last_rx = time.monotonic()

    @property
    def limit(self) -> float:
        return self.interval * self.count_max


class Monitor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def watch(self, transport: Any, interval: float, count_max: int, label: str) -> Watch | None:
        """Start watching ``transport`` (an authenticated paramiko Transport); None if disabled
        (interval 0, as ServerAliveInterval 0)."""
        if interval <= 0:
            return None
        w = Watch(transport, float(interval), max(1, int(count_max)), label)
        _hook_reads(transport, w)
        with self._lock:
            self._watches.add(w)
            transport._runbook_watch = w  # keeps the Watch alive as long as the transport
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name="runbook-ssh-alive")
                self._thread.start()
        return w

    def _loop(self) -> None:
        while True:
            time.sleep(TICK)
            with self._lock:
                watches = list(self._watches)
            for w in watches:
                with contextlib.suppress(Exception):
                    self._check(w)

    def _check(self, w: Watch) -> None:
        t = w.transport
        if w.dead or not t.is_active():
            with self._lock:
                self._watches.discard(w)
            return
        now = time.monotonic()
        silent = now - w.last_rx
        if silent >= w.limit:
            w.dead = (
                f"no answer from the server for {silent:.0f}s "
                f"(ServerAliveInterval {w.interval:g} x ServerAliveCountMax {w.count_max})"
            )
            threading.Thread(target=_close, args=(t,), daemon=True, name="runbook-ssh-dead").start()
            return
        if silent >= w.interval and now - w.last_probe >= w.interval and not w._sending:
            w.last_probe = now
            w._sending = True  # sending can block while the peer's window is full: never here
            threading.Thread(target=_probe, args=(w,), daemon=True, name="runbook-ssh-probe").start()


def _probe(w: Watch) -> None:
    try:
        from paramiko.common import cMSG_GLOBAL_REQUEST
        from paramiko.message import Message

        m = Message()
        m.add_byte(cMSG_GLOBAL_REQUEST)
        m.add_string("keepalive@openssh.com")
        m.add_boolean(True)  # want-reply: the answer (even a failure) proves the server is there
        w.transport._send_user_message(m)
    except Exception:
        pass
    finally:
        w._sending = False


def _close(t: Any) -> None:
    with contextlib.suppress(Exception):
        t.close()


def _hook_reads(transport: Any, w: Watch) -> None:
    """Note the time of every packet the transport's reader thread receives from the server."""
    pk = transport.packetizer
    read = pk.read_message

    def read_message() -> Any:
        msg = read()
        w.received()
        return msg

    pk.read_message = read_message


MONITOR = Monitor()


def reason(transport: Any) -> str | None:
    """Why the monitor closed this transport, if it did."""
    w = getattr(transport, "_runbook_watch", None)
    return w.dead if w is not None else None
