"""Service clients that steps reach through Client/Http actions (the only place psycopg, redis and
HTTP connections are opened). A step names the operation it calls with a typed
runbook.actions.Operation (``"runbook.execute.clients.redis:ping"``): each operation is a function
``fn(params, transport, stack, cancel) -> result`` in its service's module, and connections go
through ``transport.tunnel``. Adding an operation is adding that function (and the step's Operation)."""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from collections.abc import Callable
from typing import Any

from runbook.actions import Client, Operation
from runbook.errors import require_extra
from runbook.execute.transports.base import Transport


def call(
    action: Client,
    transport: Transport,
    stack: contextlib.ExitStack,
    cancel: threading.Event,
    note: Callable[[str], None] | None = None,
) -> Any:
    """Perform a Client action for one host: import its operation's implementation and call it.
    ``note``: live progress lines for the operator (operations that stream)."""
    op = action.op
    if op.library:  # a step failure naming the extra, not an ImportError
        require_extra(op.library, f"the {op.service} client", op.install)
    params = dict(action.params)
    if note is not None and op.streams:
        params["_note"] = note
    return _implementation(op.target)(params, transport, stack, cancel)


Job = tuple[str, dict[str, Any], Transport, Callable[[str], None]]  # host, params, transport, note


def call_batch(
    op: Operation,
    jobs: list[Job],
    cancel: threading.Event,
    deliver: Callable[[str, Any], None] | None = None,
) -> dict[str, Any]:
    """A batched operation (``Client.batched``): ONE call for several hosts; each host's result.
    (runbook.execute.gather decides which hosts go together.) ``deliver(host, result)``: each
    host's result as soon as it is known. The implementation is ``fn(jobs, cancel, deliver)``."""
    if op.library:
        require_extra(op.library, f"the {op.service} client", op.install)
    return _implementation(op.target)(jobs, cancel, deliver)


@functools.cache
def _implementation(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"client operation {target!r} cannot be loaded: {exc}") from None
    if not callable(fn):
        raise ValueError(f"client operation {target!r} is not a function")
    return fn


def http_request(action: Any, transport: Transport, stack: contextlib.ExitStack) -> Any:
    """HTTP through the transport (http.client and ssl are imported on the first request)."""
    from runbook.execute.clients.http import http_request as _request

    return _request(action, transport, stack)


__all__ = ["call", "call_batch", "http_request"]
