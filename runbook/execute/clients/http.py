"""HTTP from the host's point of view: the URL's host:port is reached through the transport's tunnel
(identity locally, an SSH direct-tcpip channel remotely). Plain http.client, no extra dependency."""

from __future__ import annotations

import contextlib
import http.client
import ssl
import time
from urllib.parse import urlsplit

from runbook.execute.transports.base import Transport
from runbook.plan.actions import Http, HttpResponse


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
            headers = {"Host": parts.netloc, "User-Agent": "runbook", **dict(action.headers)}
            try:
                conn.request(action.method.upper(), path, body=action.body, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                return HttpResponse(
                    status=resp.status,
                    headers={k.lower(): v for k, v in resp.getheaders()},
                    body=body,
                    elapsed=time.monotonic() - start,
                )
            finally:
                conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return HttpResponse(status=0, error=f"{type(exc).__name__}: {exc}", elapsed=time.monotonic() - start)
