"""What an unexpected exception inside a step (or an undo, a probe, a client) becomes: that step's
failure, with a clear one-line message (the exception's type and message). The traceback goes only
to the ``runbook.execute`` debug log, which the CLI shows with ``-vvv`` (redacted, like the message).

And the run-level faults: the audit trail or the run state could not be written. Such a fault stops
the run's steps (what changed is rolled back) and ends the run with exit 5 (see runresult)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from runbook.errors import RunbookError

log = logging.getLogger("runbook.execute")


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
    if log.isEnabledFor(logging.DEBUG):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.debug("%s%s", f"{where}: " if where else "", redact(tb))
    return redact(msg)
