"""A threaded HTTP server on 127.0.0.1 that stops cleanly (shared by the stand-ins)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Handler(BaseHTTPRequestHandler):
    """Dispatches every method to ``self.server.owner.handle(self)``; quiet logs."""

    server_version = "standin/1"

    def _dispatch(self) -> None:
        self.server.owner.handle(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, (bytes, str)):
            data = payload.encode() if isinstance(payload, str) else payload
            ctype = "text/plain; charset=UTF-8"
        else:
            data = json.dumps(payload).encode()
            ctype = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class StandIn:
    """Start/stop plumbing: ``with Thing() as t: t.url``."""

    def __init__(self, port: int = 0):
        self._port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandIn:
        self._server = Server(("127.0.0.1", self._port), Handler)
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def handle(self, req: Handler) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def serve_until_signal(self, banner: str) -> None:
        """For ``python -m``: run until SIGINT/SIGTERM."""
        import signal

        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        self.start()
        print(banner.format(url=self.url), flush=True)
        done.wait()
        self.stop()
