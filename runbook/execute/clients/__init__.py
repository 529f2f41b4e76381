"""Service clients that steps reach through Client/Http actions (the only place psycopg, redis and
HTTP connections are opened). Each service module defines ``OPS: dict[str, callable]`` where a callable
is ``fn(params, transport, stack, cancel) -> result``; connections go through ``transport.tunnel``."""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any

from runbook.actions import Client
from runbook.errors import require_extra
from runbook.execute.transports.base import Transport

SERVICES = {"postgres": "runbook.execute.clients.postgres", "redis": "runbook.execute.clients.redis"}
# the library each service client needs (an optional extra of the package: runbook.errors.EXTRAS)
LIBRARIES = {"postgres": "psycopg", "redis": "redis"}


def call(action: Client, transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event) -> Any:
    modname = SERVICES.get(action.service, f"runbook.execute.clients.{action.service}")
    if action.service in LIBRARIES:  # a step failure naming the extra, not an ImportError
        require_extra(LIBRARIES[action.service], f"the {action.service} client")
    mod = importlib.import_module(modname)
    try:
        fn = mod.OPS[action.op]
    except KeyError:
        raise ValueError(f"client {action.service} has no operation {action.op!r}") from None
    return fn(dict(action.params), transport, stack, cancel)


def http_request(action: Any, transport: Transport, stack: contextlib.ExitStack) -> Any:
    """HTTP through the transport (http.client and ssl are imported on the first request)."""
    from runbook.execute.clients.http import http_request as _request

    return _request(action, transport, stack)


__all__ = ["call", "http_request"]
