"""The session (application) layer: the one place that turns "this runbook, this inventory, these
options" into a run, a plan, a validation or a rollback. The CLI is a thin adapter over it (flags ->
request -> session -> rendered output), and so is the Python API in ``runbook``.

    request (request.py)      RunRequest, RollbackRequest, ValidateRequest: plain data, one field per
                              option; Hooks: how a run talks back (events, prompts, signals)
    inputs (project.py)       runbook resolution, project dir, inventory, -e, --secret, a saved
                              run's inputs
    run.py                    prepare -> execute: options, redactor, event bus, engine, audit writer
    rollback.py               prepare -> execute a rollback of a saved run
    validate.py               static checks, and rendering every host with the run's magic variables
    result (result.py)        Outcome (exit code, recap, step records, audit location), Validation

Importing this package is cheap: the engine, the audit writer and the validator are imported when a
session first needs them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_NAMES = {
    "Hooks": "runbook.session.request",
    "RollbackRequest": "runbook.session.request",
    "RunRequest": "runbook.session.request",
    "ValidateRequest": "runbook.session.request",
    "Outcome": "runbook.session.result",
    "RunbookCheck": "runbook.session.result",
    "Validation": "runbook.session.result",
}

if TYPE_CHECKING:
    from runbook.session.request import Hooks, RollbackRequest, RunRequest, ValidateRequest
    from runbook.session.result import Outcome, RunbookCheck, Validation

__all__ = [
    "Hooks",
    "Outcome",
    "RollbackRequest",
    "RunRequest",
    "RunbookCheck",
    "ValidateRequest",
    "Validation",
]


def __getattr__(name: str) -> Any:
    """The request and result types, imported on first use (the CLI's start stays cheap)."""
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'runbook.session' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
