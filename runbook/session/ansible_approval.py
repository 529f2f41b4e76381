"""The approval desk of an ``--engine ansible`` run: how an ``approve:`` step asks runbook's console.

The step runs in an ansible-playbook worker (runbook.core.step, for a kind that ``asks_approval``);
it connects to the Unix socket named by ``$RUNBOOK_APPROVAL_SOCKET`` (in the run's private 0700
data directory, the socket itself 0600), sends one JSON line (host, task name as Ansible rendered
it, task path, the step's arguments) and waits for one JSON line back: ``{"ok": bool, "msg": str}``.
Here each question is answered in turn (one prompt at a time on the console, as the native engine
asks) by ``answer(request)``, the engine's decision (runbook.execute.approval.decide).

Every wait is bounded: the desk's accept loop looks at its stop flag every 0.2 s, a request line
must arrive within REQUEST_WAIT seconds; the step waits for the answer as long as the run lives
(the socket closes when runbook ends: no answer is no approval) and at most its own cap."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

REQUEST_WAIT = 10.0
MAX_REQUEST = 1 << 20


class Desk:
    def __init__(self, path: Path, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.path, self.answer = Path(path), answer
        self.stop = threading.Event()
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Desk:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.listen(16)
        sock.settimeout(0.2)
        self.sock = sock
        self.thread = threading.Thread(target=self._serve, name="approval-desk", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5.0)
        if self.sock is not None:
            self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _serve(self) -> None:
        assert self.sock is not None
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    self._one(conn)
                except (OSError, ValueError):  # the step went away, or sent nonsense: no approval
                    continue

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_WAIT)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
            if len(data) > MAX_REQUEST:
                raise ValueError("request too large")
        req = json.loads(data)
        try:
            reply = self.answer(req if isinstance(req, dict) else {})
        except Exception as exc:  # never approved by accident: an error is a denial, with its reason
            reply = {"ok": False, "msg": f"not approved (the approval failed: {type(exc).__name__}: {exc})"}
        conn.settimeout(REQUEST_WAIT)
        conn.sendall(json.dumps(reply).encode() + b"\n")
