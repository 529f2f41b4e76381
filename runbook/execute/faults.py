"""What an unexpected exception inside a step (or an undo, a probe, a client) becomes: that step's
failure, with a clear one-line message (the exception's type and message). The traceback goes only
to the ``runbook.execute`` debug log, which the CLI shows with ``-vvv`` (redacted, like the message).

And the run-level faults: the audit trail or the run state could not be written. Such a fault stops
the run's steps (what changed is rolled back) and ends the run with exit 5 (see runresult)."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

from runbook.errors import RunbookError


def debug_log() -> Any:
    """The ``runbook.execute`` logger when it may show debug messages, else None. Without the
    ``logging`` module imported nobody has configured a handler or a level (the CLI's ``-vvv``
    imports it to do so), so debug is off, and a run does not import it only to learn that."""
    logging = sys.modules.get("logging")
    if logging is None:
        return None
    log = logging.getLogger("runbook.execute")
    return log if log.isEnabledFor(logging.DEBUG) else None


class StateWriteError(RunbookError):
    """The run state (and so a snapshot) could not be written durably: the change must not happen."""

    exit_code = 5


def describe(exc: BaseException, redact: Callable[[str], str] = lambda s: s, where: str = "") -> str:
    """``Type: message`` for an exception nobody expected (a RunbookError is its own message); the
    traceback is logged at debug level (``-vvv``), redacted."""
    if isinstance(exc, RunbookError):
        return redact(str(exc))
    text = str(exc).strip() or "(no message)"
    msg = f"{type(exc).__name__}: {text}"
    log = debug_log()
    if log is not None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.debug("%s%s", f"{where}: " if where else "", redact(tb))
    return redact(msg)
