"""Redis client (redis-py) for redis.ping: PING and INFO through ``transport.tunnel``.

Returns plain dicts; connection or auth failures come back as ``{"ok": False, "error": ...}`` with the
password never included.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from runbook.execute.transports.base import Transport
from runbook.render.secrets import MASK


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, MASK) if secret else text


def ping(params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event):
    """{url, timeout?, info?: true} -> {ok, latency_ms, version, used_memory, maxmemory, maxmemory_policy}."""
    import redis

    url = urlsplit(str(params["url"]))
    password = unquote(url.password) if url.password else None
    if url.scheme not in ("redis", "rediss"):
        return {"ok": False, "error": f"unsupported URL scheme {url.scheme!r} (use redis:// or rediss://)"}
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    try:
        db = int((url.path or "/0").strip("/") or 0)
    except ValueError:
        return {"ok": False, "error": f"bad database number in the URL path {url.path!r}"}
    timeout = float(params.get("timeout", 5))
    try:
        local_host, local_port = stack.enter_context(transport.tunnel(host, port))
        client = redis.Redis(
            host=local_host,
            port=int(local_port),
            db=db,
            username=unquote(url.username) if url.username else None,
            password=password,
            ssl=url.scheme == "rediss",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        stack.callback(client.close)
        start = time.monotonic()
        pong = client.ping()
        out: dict[str, Any] = {"ok": bool(pong), "latency_ms": round((time.monotonic() - start) * 1000, 2)}
        if params.get("info", True):
            info = client.info("server") | client.info("memory")
            out.update(
                version=str(info.get("redis_version", "")),
                used_memory=int(info.get("used_memory", 0)),
                maxmemory=int(info.get("maxmemory", 0)),
                maxmemory_policy=str(info.get("maxmemory_policy", "")),
            )
        return out
    except (redis.RedisError, OSError, ValueError) as exc:
        return {"ok": False, "error": _redact(f"{type(exc).__name__}: {exc}", password)}

