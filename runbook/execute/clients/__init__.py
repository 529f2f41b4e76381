"""Service clients that steps reach through Client/Http actions (the only place psycopg, redis and
HTTP connections are opened). Each service module defines ``OPS: dict[str, callable]`` where a callable
is ``fn(params, transport, stack, cancel) -> result``; connections go through ``transport.tunnel``."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable
from typing import Any

from runbook.actions import Client
from runbook.errors import require_extra
from runbook.execute.transports.base import Transport

SERVICES = {"postgres": "runbook.execute.clients.postgres", "redis": "runbook.execute.clients.redis"}
# the library each service client needs (an optional extra of the package: runbook.errors.EXTRAS)
LIBRARIES = {"postgres": "psycopg", "redis": "redis"}


def _module(service: str) -> Any:
    modname = SERVICES.get(service, f"runbook.execute.clients.{service}")
    if service in LIBRARIES:  # a step failure naming the extra, not an ImportError
        require_extra(LIBRARIES[service], f"the {service} client")
    return importlib.import_module(modname)


def call(
    action: Client,
    transport: Transport,
    stack: contextlib.ExitStack,
    cancel: threading.Event,
    note: Callable[[str], None] | None = None,
) -> Any:
    """One host's call. ``note``: live progress lines for the operator (clients that stream)."""
    mod = _module(action.service)
    try:
        fn = mod.OPS[action.op]
    except KeyError:
        raise ValueError(f"client {action.service} has no operation {action.op!r}") from None
    params = dict(action.params)
    if note is not None and action.op in getattr(mod, "STREAMS", ()):
        params["_note"] = note
    return fn(params, transport, stack, cancel)


Job = tuple[str, dict[str, Any], Transport, Callable[[str], None]]  # host, params, transport, note


def call_batch(
    service: str,
    op: str,
    jobs: list[Job],
    cancel: threading.Event,
    deliver: Callable[[str, Any], None] | None = None,
) -> dict[str, Any]:
    """A batched operation (``Client.batched``): ONE call for several hosts; each host's result.
    (runbook.execute.gather decides which hosts go together.) ``deliver(host, result)``: each
    host's result as soon as it is known."""
    mod = _module(service)
    try:
        fn = mod.BATCH_OPS[op]
    except (KeyError, AttributeError):
        raise ValueError(f"client {service} has no batched operation {op!r}") from None
    return fn(jobs, cancel, deliver)


def http_request(action: Any, transport: Transport, stack: contextlib.ExitStack) -> Any:
    """HTTP through the transport (http.client and ssl are imported on the first request)."""
    from runbook.execute.clients.http import http_request as _request

    return _request(action, transport, stack)


__all__ = ["call", "call_batch", "http_request"]
