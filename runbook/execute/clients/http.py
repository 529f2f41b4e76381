"""HTTP from the host's point of view: the URL's host:port is reached through the transport's tunnel
(identity locally, an SSH direct-tcpip channel remotely). Plain http.client, no extra dependency."""

from __future__ import annotations

import contextlib
import http.client
import ssl
import time
from urllib.parse import urlsplit

from runbook.actions import Http, HttpResponse
from runbook.execute.transports.base import Transport


def http_request(action: Http, transport: Transport, stack: contextlib.ExitStack) -> HttpResponse:
    parts = urlsplit(action.url)
    if parts.scheme not in ("http", "https"):
        return HttpResponse(status=0, error=f"unsupported URL scheme {parts.scheme!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "127.0.0.1"
    start = time.monotonic()
    try:
        with transport.tunnel(host, port) as (thost, tport):
            if parts.scheme == "https":
                ctx = (
                    ssl.create_default_context()
                    if action.validate_certs
                    else ssl._create_unverified_context()
                )
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    thost, tport, timeout=action.timeout, context=ctx
                )
            else:
                conn = http.client.HTTPConnection(thost, tport, timeout=action.timeout)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            netloc = parts.netloc.rsplit("@", 1)[-1]  # user:password@ goes in Authorization, not Host
            headers = {"Host": netloc, "User-Agent": "runbook", **action.request_headers()}
            try:
                conn.request(action.method.upper(), path, body=action.body, headers=headers)
                resp = conn.getresponse()
                body, too_large = _read_body(resp, action.max_body)
                return HttpResponse(
                    status=resp.status,
                    headers={k.lower(): v for k, v in resp.getheaders()},
                    body=body,
                    elapsed=time.monotonic() - start,
                    too_large=too_large,
                )
            finally:
                conn.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:  # ValueError: InvalidURL
        error = _hide(f"{type(exc).__name__}: {exc}", action)
        return HttpResponse(status=0, error=error, elapsed=time.monotonic() - start)


CHUNK = 64 * 1024


def _read_body(resp: http.client.HTTPResponse, limit: int | None) -> tuple[bytes, int | None]:
    """The body, read in chunks and never more than ``limit`` + 1 bytes of it: (body, None), or
    (b"", size) when it is longer than ``limit`` (size: its Content-Length when that says so before
    anything is read, else the bytes read when reading stopped). The caller closes the connection,
    so the rest is never transferred."""
    if limit is None:
        return resp.read(), None
    length = resp.getheader("Content-Length", "")
    if length.strip().isdigit() and int(length) > limit:
        return b"", int(length)
    chunks: list[bytes] = []
    got = 0
    while got <= limit:
        chunk = resp.read(min(CHUNK, limit + 1 - got))
        if not chunk:
            return b"".join(chunks), None
        chunks.append(chunk)
        got += len(chunk)
    return b"", got


def _hide(text: str, action: Http) -> str:
    """An error message without the URL's secret parts when the request has a display form."""
    if action.display is None:
        return text
    parts = urlsplit(action.url)
    for secret in sorted(
        {action.url, parts.path, parts.query, parts.path.lstrip("/")}, key=len, reverse=True
    ):
        if secret and secret != "/":
            text = text.replace(secret, "…")
    return text
