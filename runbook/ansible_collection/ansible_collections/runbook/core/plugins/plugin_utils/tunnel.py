"""A local port forwarded through Ansible's ssh connection (``ssh -W HOST:PORT``, one per accepted
connection, built by the connection plugin itself: its host, port, user, key, ControlMaster socket,
``ssh_common_args`` and so its host key checking).

``runbook exec`` reaches a client kind's service (``postgres.*``, ``redis.*``, ``http.*``) as the
target sees it, through its SSH session; this is the same for a task on Ansible's ``ssh``
connection: a listening socket on 127.0.0.1:<ephemeral> whose connections are pumped to and from
an ``ssh -W`` process's stdio."""

from __future__ import annotations

import contextlib
import select
import socket
import subprocess
import threading
from collections.abc import Sequence


class StdioForwarder:
    def __init__(self, argv: Sequence[bytes | str]):
        self.argv = [a.decode() if isinstance(a, bytes) else str(a) for a in argv]
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name="runbook-ssh-W")
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self.listener], [], [], 0.2)
                if not ready:
                    continue
                client, _ = self.listener.accept()
            except (OSError, ValueError):
                return
            t = threading.Thread(target=self._serve, args=(client,), daemon=True, name="runbook-ssh-W-pump")
            with self._lock:
                self._threads.append(t)
            t.start()

    def _serve(self, client: socket.socket) -> None:
        try:
            proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
        except OSError:
            client.close()
            return
        with self._lock:
            self._procs.append(proc)
        assert proc.stdin is not None and proc.stdout is not None

        def upstream() -> None:  # client -> ssh's stdin
            try:
                while True:
                    data = client.recv(1 << 16)
                    if not data:
                        break
                    proc.stdin.write(data)  # type: ignore[union-attr]
                    proc.stdin.flush()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()  # type: ignore[union-attr]

        up = threading.Thread(target=upstream, daemon=True)
        up.start()
        try:
            while True:  # ssh's stdout -> client
                data = proc.stdout.read1(1 << 16)
                if not data:
                    break
                client.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
            up.join(2)
            self._end(proc)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(3)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._acceptor.join(2)
        with self._lock:
            procs, threads = list(self._procs), list(self._threads)
        for proc in procs:
            self._end(proc)
        for t in threads:
            t.join(2)
