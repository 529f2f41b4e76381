"""Local port forwarding over an existing SSH connection (like ``ssh -L``): a listening socket on
127.0.0.1:<ephemeral>; each accepted connection gets its own direct-tcpip channel and a pump thread."""

from __future__ import annotations

import select
import socket
import threading
from typing import Any


class Forwarder:
    def __init__(self, transport: Any, host: str, port: int, *, open_timeout: float = 10.0):
        self.transport = transport
        self.dest = (host, port)
        self.open_timeout = open_timeout
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, Any]] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True, name="runbook-ssh-tunnel")
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self.listener], [], [], 0.2)
                if not ready:
                    continue
                client, peer = self.listener.accept()
            except (OSError, ValueError):
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = threading.Thread(
                target=self._serve, args=(client, peer), daemon=True, name="runbook-ssh-pump"
            )
            with self._lock:
                self._threads.append(t)
            t.start()

    def _serve(self, client: socket.socket, peer: tuple[str, int]) -> None:
        try:
            chan = self.transport.open_channel("direct-tcpip", self.dest, peer[:2], timeout=self.open_timeout)
        except Exception:
            client.close()  # the far side refused: the local client sees the connection closed
            return
        with self._lock:
            if self._closed.is_set():
                chan.close()
                client.close()
                return
            self._pairs.append((client, chan))
        try:
            self._pump(client, chan)
        except (OSError, EOFError):
            pass  # either side went away: just drop this connection
        finally:
            chan.close()
            client.close()
            with self._lock:
                if (client, chan) in self._pairs:
                    self._pairs.remove((client, chan))

    def _pump(self, client: socket.socket, chan: Any) -> None:
        client_open = chan_open = True
        while (client_open or chan_open) and not self._closed.is_set():
            watch = ([client] if client_open else []) + ([chan] if chan_open else [])
            try:
                ready, _, _ = select.select(watch, [], [], 0.5)
            except (OSError, ValueError):
                return
            if client in ready:
                data = client.recv(1 << 16)
                if data:
                    chan.sendall(data)
                else:
                    client_open = False
                    chan.shutdown_write()
            if chan in ready:
                data = chan.recv(1 << 16)
                if data:
                    client.sendall(data)
                else:
                    chan_open = False
                    try:
                        client.shutdown(socket.SHUT_WR)
                    except OSError:
                        return
            if not chan_open and chan.closed:
                return
            if not self.transport.is_active():
                return

    def close(self) -> None:
        self._closed.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            pairs, threads = list(self._pairs), list(self._threads)
        for client, chan in pairs:
            try:
                chan.close()
            finally:
                client.close()
        self._acceptor.join(2)
        for t in threads:
            t.join(2)
