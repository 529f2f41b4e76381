#!/usr/bin/env python3
"""lb.py: a small HTTP reverse proxy standing in for the load balancer of a blue-green deploy.

Seed 003 switches traffic by patching a Kubernetes Service's selector (``version: green``); behind an
nginx or HAProxy, the same switch is rewriting the upstream include and reloading. This proxy plays
that part on one machine: it forwards every request to the upstream named in an nginx-style upstream
file and notices, on every request, when the file was replaced (a new inode or mtime). Writing the
file (atomically, as runbook's ``template`` step does) *is* the traffic switch; restoring the old
file switches back. No reload, no restart, no dropped connection.

    # /srv/app/upstream.conf, as templates/blue-green/upstream.conf.j2 renders it
    upstream app_live {
        server 127.0.0.1:18101;   # blue
    }

    python3 demo/lb.py --listen 127.0.0.1:18100 --upstream-file /srv/app/upstream.conf

Answers ``502`` (JSON ``{"error": ...}``) while there is no upstream or it does not answer. Every
proxied response carries ``X-Upstream: HOST:PORT`` so a check can tell which colour served it.
Listens on 127.0.0.1 unless told otherwise; stdlib only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVER = re.compile(r"^\s*server\s+([0-9A-Za-z_.:\-\[\]]+?):(\d+)\s*[^;]*;", re.MULTILINE)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


class Upstream:
    """The upstream file, re-read whenever it changes (checked on every request: one stat)."""

    def __init__(self, path: str):
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._target: tuple[str, int] | None = None
        self._error = "no upstream file yet"
        self._lock = threading.Lock()

    def current(self) -> tuple[tuple[str, int] | None, str]:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            return None, f"no upstream: {self.path}: {exc.strerror}"
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._key:
                self._key = key
                try:
                    with open(self.path, encoding="utf-8") as fh:
                        m = SERVER.search(_strip_comments(fh.read()))
                except OSError as exc:
                    m, self._error = None, f"cannot read {self.path}: {exc.strerror}"
                if m:
                    self._target, self._error = (m.group(1).strip("[]"), int(m.group(2))), ""
                elif not self._error.startswith("cannot read"):
                    self._target, self._error = None, f"no 'server HOST:PORT;' line in {self.path}"
            return self._target, self._error


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


class Proxy(BaseHTTPRequestHandler):
    server_version = "runbook-demo-lb/1"
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        upstream: Upstream = self.server.upstream  # type: ignore[attr-defined]
        target, error = upstream.current()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if target is None:
            return self._answer(502, {"error": error})
        host, port = target
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = self.client_address[0]
        conn = http.client.HTTPConnection(host, port, timeout=self.server.timeout_s)  # type: ignore[attr-defined]
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            return self._answer(502, {"error": f"upstream {host}:{port}: {exc}"}, f"{host}:{port}")
        finally:
            conn.close()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", f"{host}:{port}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer(self, status: int, doc: dict[str, Any], upstream: str = "") -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if upstream:
            self.send_header("X-Upstream", upstream)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:  # type: ignore[attr-defined]
            sys.stderr.write("lb: " + (format % args) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Reverse proxy to the upstream named in an nginx-style file.")
    p.add_argument("--listen", default="127.0.0.1:18100", help="HOST:PORT to listen on (default %(default)s)")
    p.add_argument("--upstream-file", required=True, help="file holding 'server HOST:PORT;'")
    p.add_argument("--timeout", type=float, default=10.0, help="upstream timeout in seconds")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Proxy)
    server.daemon_threads = True
    server.upstream = Upstream(a.upstream_file)  # type: ignore[attr-defined]
    server.timeout_s = a.timeout  # type: ignore[attr-defined]
    server.verbose = a.verbose  # type: ignore[attr-defined]

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"lb: listening on {a.listen}, upstream from {a.upstream_file}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
