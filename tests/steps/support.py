"""Helpers for the step-kind tests: a real local transport, a step context rooted in tmp_path, a
runner that validates args against the kind's schema like the engine does, and a real HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import pytest

from runbook.actions import Action
from runbook.execute.driver import Drive
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.local import LocalTransport
from runbook.kinds import checks, files, flow
from runbook.kinds import http as http_steps
from runbook.kinds.base import Outcome, StepContext, StepKind

KINDS: dict[str, type[StepKind]] = {
    cls.name: cls
    for mod in (files, checks, http_steps, flow)
    for cls in vars(mod).values()
    if isinstance(cls, type) and issubclass(cls, StepKind) and cls.name and cls.__module__ == mod.__name__
}


class RecordingDrive(Drive):
    """A Drive that also keeps every action the step yielded."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.actions: list[Action] = []

    def perform(self, action: Action) -> Any:
        self.actions.append(action)
        return super().perform(action)


@dataclass
class Result:
    outcome: Outcome
    drive: RecordingDrive

    @property
    def snapshot(self) -> dict[str, Any]:
        assert len(self.drive.snapshots) == 1, self.drive.snapshots
        return self.drive.snapshots[0]


@dataclass
class Runner:
    tmp: Path
    vars: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.transport = LocalTransport(HostSpec.from_vars("localhost", {"ansible_connection": "local"}))
        self.project = self.tmp / "project"
        self.project.mkdir(exist_ok=True)
        self.vars.setdefault("runbook_backup_dir", str(self.tmp / "backups"))

    def ctx(self, dry_run: bool = False) -> StepContext:
        v = self.vars
        return StepContext(
            host="localhost",
            vars=v,
            project_dir=self.project,
            run_id="t",
            dry_run=dry_run,
            render_str=lambda s: jinja2.Template(s, undefined=jinja2.StrictUndefined).render(**v),
        )

    def run(self, name: str, args: Any, *, dry_run: bool = False, read_only: bool = False) -> Result:
        kind = KINDS[name]()
        norm = kind.normalize(args)
        jsonschema.Draft202012Validator(kind.schema).validate(norm)
        drive = RecordingDrive(transport=self.transport, dry_run=dry_run, read_only=read_only)
        return Result(drive.run(kind.run(norm, self.ctx(dry_run))), drive)

    def undo(self, name: str, args: Any, snapshot: dict[str, Any]) -> Result:
        kind = KINDS[name]()
        snapshot = json.loads(json.dumps(snapshot))  # as the engine stores it
        drive = RecordingDrive(transport=self.transport)
        return Result(drive.run(kind.undo(kind.normalize(args), snapshot, self.ctx())), drive)


@pytest.fixture
def rb(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def tree_state(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under root with its type, mode and content hash / link target."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                out[str(p)] = ("link", st.st_mode, os.readlink(p))
            elif p.is_dir():
                out[str(p)] = ("dir", st.st_mode, "")
            else:
                out[str(p)] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# ------------------------------------------------------------------------------------ HTTP server
class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *a: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, size: int) -> None:
        """Send ``size`` bytes close-delimited, counting in ``server.streamed`` what got out before
        the client hung up; ``server.stream_done`` is set when the handler is through."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        chunk = b"x" * (64 * 1024)
        try:
            while self.server.streamed < size:
                self.wfile.write(chunk)
                self.server.streamed += len(chunk)
        except OSError:  # the client closed the connection
            self.close_connection = True
        finally:
            self.server.stream_done.set()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, body, dict(self.headers)))
        path = self.path.split("?")[0]
        if path == "/health":
            doc = {
                "status": "healthy",
                "db": {"ok": True, "latency_ms": 3},
                "items": [{"name": "a"}],
                "n": 200,
            }
            self._send(200, json.dumps(doc).encode(), X_Version="1.2.3")
        elif path == "/degraded":
            self._send(503, json.dumps({"status": "degraded"}).encode())
        elif path == "/text":
            self._send(200, b"hello world\nversion=42\n", "text/plain")
        elif path == "/big":
            self._send(200, b"x" * (100 * 1024), "text/plain")
        elif path == "/endless":  # 64 MiB, no Content-Length (the body ends when the connection does)
            self._stream(64 << 20)
        elif path == "/echo":
            doc = {"method": self.command, "body": body.decode(), "ctype": self.headers.get("Content-Type")}
            self._send(201 if self.command == "POST" else 200, json.dumps(doc).encode())
        elif path == "/flaky":
            self.server.flaky += 1
            ok = self.server.flaky > 2
            self._send(200 if ok else 503, b"{}")
        else:
            self._send(404, b'{"error": "not found"}')

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, str, bytes, dict[str, str]]]
    flaky: int
    streamed: int
    stream_done: threading.Event


@pytest.fixture
def http_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.flaky = 0
    server.streamed = 0
    server.stream_done = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def base_url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"
