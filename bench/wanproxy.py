"""A delaying TCP proxy: a WAN link on loopback (netem is not available in every kernel).

Each listener forwards to one upstream (an sshd). Every chunk read from one side is stamped with the
time it was read and written to the other side ``one_way`` seconds later, in order: the delay is
latency, not bandwidth (a chunk is never held up by the one before it beyond its own due time). The
TCP handshake is modelled too: the upstream connection is made ``1.5 × RTT`` after the client's
connect() returned (SYN, SYN-ACK, ACK), so the server's banner reaches the client 2 RTT after it
started connecting, as on a real link.

Per connection the proxy counts **turns**: a client→server chunk read after a server→client chunk
was delivered to the client (since the client's previous chunk) starts a new turn — the client
spoke after hearing from the server, one round trip it waited for — unless the current turn began
less than half a round trip before (the same flight: what the client heard was already on its way). The TCP handshake is one more
(not seen as chunks). Each connection is logged as one JSON line (``log``): start time, turns with
their start offsets and bytes each way.

    python3 bench/wanproxy.py --rtt 50 LISTEN_HOST:PORT=UPSTREAM_HOST:PORT ...   (Ctrl-C stops)

Library: ``WanProxy(rtt_ms, log_path)`` with ``add(listen, upstream) -> (host, port)``, ``start()``,
``stop()``, ``connections()`` (the logged records), ``accepted()`` (how many were accepted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Conn:
    id: int
    listen: str
    t0: float
    turns: list[dict[str, Any]] = field(default_factory=list)  # {"t": offset s, "up": B, "down": B}
    one_way: float = 0.0
    delivered_since_up: bool = True  # the first client chunk opens turn 1
    closed: float | None = None

    def up(self, n: int, now: float) -> None:
        # a new turn: the client heard from the server since it last spoke, and it is not the same
        # flight (less than half a round trip since this turn began: what arrived was already on
        # its way, e.g. the server's KEXINIT right behind its banner)
        if self.delivered_since_up and (
            not self.turns or now - self.t0 - self.turns[-1]["t"] >= self.one_way
        ):
            self.turns.append({"t": round(now - self.t0, 4), "up": 0, "down": 0})
            self.delivered_since_up = False
        self.turns[-1]["up"] += n

    def down(self, n: int) -> None:
        if self.turns:
            self.turns[-1]["down"] += n
        self.delivered_since_up = True

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "listen": self.listen,
            "start": self.t0,
            "duration": round((self.closed or time.monotonic()) - self.t0, 4),
            "turns": len(self.turns),
            "turn_log": self.turns,
        }


class WanProxy:
    def __init__(self, rtt_ms: float, log_path: Path | None = None):
        self.one_way = rtt_ms / 2000.0
        self.log_path = log_path
        self._routes: list[tuple[tuple[str, int], tuple[str, int]]] = []
        self._servers: list[asyncio.base_events.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._records: list[dict[str, Any]] = []
        self._next = 0
        self._lock = threading.Lock()

    def add(self, listen: tuple[str, int], upstream: tuple[str, int]) -> tuple[str, int]:
        """Route ``listen`` (port 0: any free one) to ``upstream``; returns the bound address."""
        if listen[1] == 0:
            with socket.socket() as s:
                s.bind(listen)
                listen = (listen[0], s.getsockname()[1])
        self._routes.append((listen, upstream))
        return listen

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="wanproxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def connections(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def accepted(self) -> int:
        """Connections accepted so far (``connections()`` lists those already closed)."""
        with self._lock:
            return self._next

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    # ------------------------------------------------------------------------------------ internals
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        for listen, upstream in self._routes:
            srv = self._loop.run_until_complete(
                asyncio.start_server(
                    lambda r, w, up=upstream, ls=listen: self._handle(r, w, up, ls),
                    *listen,
                    reuse_address=True,
                )
            )
            self._servers.append(srv)
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            for s in self._servers:
                s.close()
            self._loop.close()

    async def _handle(
        self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter, upstream: tuple[str, int], listen: tuple
    ) -> None:
        with self._lock:
            self._next += 1
            conn = Conn(self._next, f"{listen[0]}:{listen[1]}", time.monotonic(), one_way=self.one_way)
        _nodelay(cw)
        up_q: asyncio.Queue = asyncio.Queue()
        down_q: asyncio.Queue = asyncio.Queue()
        reader_task = asyncio.ensure_future(self._read(cr, up_q, conn.up))
        try:
            await asyncio.sleep(3 * self.one_way)  # SYN, SYN-ACK, ACK: the server accepts 1.5 RTT in
            ur, uw = await asyncio.open_connection(*upstream)
            _nodelay(uw)
            tasks = [
                reader_task,
                asyncio.ensure_future(self._read(ur, down_q, None)),
                asyncio.ensure_future(self._write(up_q, uw, None)),
                asyncio.ensure_future(self._write(down_q, cw, conn.down)),
            ]
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            reader_task.cancel()
            conn.closed = time.monotonic()
            for w in (cw,):
                with contextlib.suppress(Exception):
                    w.close()
            rec = conn.record()
            with self._lock:
                self._records.append(rec)
            if self.log_path is not None:
                with open(self.log_path, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")

    async def _read(self, r: asyncio.StreamReader, q: asyncio.Queue, note: Any) -> None:
        try:
            while True:
                data = await r.read(1 << 16)
                now = time.monotonic()
                if note is not None and data:
                    note(len(data), now)
                await q.put((now + self.one_way, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await q.put((time.monotonic() + self.one_way, b""))

    async def _write(self, q: asyncio.Queue, w: asyncio.StreamWriter, note: Any) -> None:
        try:
            while True:
                due, data = await q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(Exception):
                        w.write_eof()
                    return
                w.write(data)
                await w.drain()
                if note is not None:
                    note(len(data))
        except (ConnectionError, OSError):
            return


def _nodelay(w: asyncio.StreamWriter) -> None:
    sock = w.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtt", type=float, default=50.0, help="round-trip time in ms (half each way)")
    ap.add_argument("--log", type=Path, help="JSON lines, one per connection")
    ap.add_argument("routes", nargs="+", help="LISTEN_HOST:PORT=UPSTREAM_HOST:PORT")
    a = ap.parse_args()
    p = WanProxy(a.rtt, a.log)
    for r in a.routes:
        listen, _, up = r.partition("=")
        host, port = p.add(_addr(listen), _addr(up))
        print(f"listening on {host}:{port}", file=sys.stderr)
    p.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
