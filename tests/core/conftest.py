"""Shared fixtures for the core tests: a project directory in tmp_path (playbooks/, templates/, an
inventory) driven through the real CLI, a real local HTTP server, and a tree fingerprint."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import stat
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runbook.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Project:
    """A scratch project (cwd = root) with helpers to write runbooks and run the real CLI."""

    root: Path

    def runbook(self, name: str, text: str) -> Path:
        path = self.root / "playbooks" / f"{name}.yml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def template(self, name: str, text: str) -> Path:
        path = self.root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def inventory(self, text: str = "localhost ansible_connection=local\n", name: str = "inv") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def cli(self, *args: str, input: str | None = None) -> Result:
        """Run `runbook ARGS` in-process; an exception escaping the CLI fails the test loudly."""
        result = CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def exec(self, name: str, *args: str) -> Result:
        return self.cli("exec", name, "-i", str(self.root / "inv"), *args)

    def plan(self, name: str, *args: str) -> Result:
        return self.cli("plan", name, "-i", str(self.root / "inv"), *args)

    def exec_json(self, name: str, *args: str) -> tuple[Result, dict[str, Any]]:
        res = self.exec(name, "--output", "json", *args)
        return res, json.loads(res.stdout)

    def steps(self, doc: dict[str, Any], host: str = "localhost") -> dict[str, dict[str, Any]]:
        """The JSON document's step records of one host, by name (last record wins)."""
        return {s["name"]: s for s in doc["hosts"][host]["steps"]}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    monkeypatch.setenv("COLUMNS", "240")  # rich: no wrapping of long lines in assertions
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY", "RUNBOOK_AUDIT_DIR"):
        monkeypatch.delenv(var, raising=False)
    p = Project(tmp_path)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "templates").mkdir()
    p.inventory()
    return p


# ------------------------------------------------------------------------------------ the file tree
def tree_state(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, int, str]]:
    """Every path under root: type, mode and content hash (or link target)."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", st.st_mode, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode, "")
            else:
                out[rel] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int, wait: float = 5.0) -> bool:
    """Is nothing listening on 127.0.0.1:port? (Waits a little for a process that is exiting.)"""
    deadline = time.monotonic() + wait
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
        time.sleep(0.05)


# ------------------------------------------------------------------------------------ HTTP server
@dataclass
class HttpState:
    hits: Counter = field(default_factory=Counter)
    healthy_after: int = 0  # /health answers 503 for this many requests first
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.BaseHTTPRequestHandler):
    state: HttpState

    def log_message(self, *a: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        with self.state.lock:
            self.state.hits[path] += 1
            n = self.state.hits[path]
        if path == "/health":
            if n > self.state.healthy_after:
                self._send(200, {"status": "healthy", "version": "2.1.0", "hits": n})
            else:
                self._send(503, {"status": "starting", "hits": n})
        elif path == "/template":
            self._send(200, {"text": "{{ this_is_not_defined }}", "n": n})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.state.lock:
            self.state.hits["POST " + self.path] += 1
        self._send(201, {"received": body.decode()})


@dataclass
class HttpServer:
    url: str
    port: int
    state: HttpState


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    state = HttpState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield HttpServer(f"http://127.0.0.1:{port}", port, state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


PYTHON = sys.executable
