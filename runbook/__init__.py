"""runbook: a declarative runbook executor.

The package reads in the order of the flow: model (YAML -> typed objects) -> render (Jinja2) ->
plan (step kinds yield commands as data) -> execute (engine + transports, the only side effects)
-> audit (signed, hash-chained record); session turns a request into a run; cli drives it all.

The Python API (docs/api.md)::

    import runbook

    outcome = runbook.run("deploy", inventory=["inventories/prod"], extra_vars=["version=1.2"])
    outcome.exit_code, outcome.recap, outcome.steps("web1"), outcome.audit_path
    runbook.plan("deploy", inventory=["inventories/prod"])      # dry run
    runbook.validate("deploy").ok
    runbook.rollback("deploy", outcome.run_id)

The names below are imported on first use, so ``import runbook`` (and the CLI's start) stays cheap.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "run": "runbook.session.api",
    "plan": "runbook.session.api",
    "validate": "runbook.session.api",
    "rollback": "runbook.session.api",
    "RunRequest": "runbook.session.request",
    "RollbackRequest": "runbook.session.request",
    "ValidateRequest": "runbook.session.request",
    "Hooks": "runbook.session.request",
    "Outcome": "runbook.session.result",
    "Validation": "runbook.session.result",
    "RunbookCheck": "runbook.session.result",
    "RunbookError": "runbook.errors",
}

__all__ = [
    "Hooks",
    "Outcome",
    "RollbackRequest",
    "RunRequest",
    "RunbookCheck",
    "RunbookError",
    "ValidateRequest",
    "Validation",
    "__version__",
    "plan",
    "rollback",
    "run",
    "validate",
]

if TYPE_CHECKING:
    from runbook.errors import RunbookError
    from runbook.session.api import plan, rollback, run, validate
    from runbook.session.request import Hooks, RollbackRequest, RunRequest, ValidateRequest
    from runbook.session.result import Outcome, RunbookCheck, Validation


class _PlanPackage(types.ModuleType):
    """``runbook.plan`` is both the planning package (runbook/plan/) and the API's ``plan()``: the
    package, once imported, is callable, and calling it is runbook.session.api.plan."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("runbook.session.api").plan(*args, **kwargs)


class _Runbook(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "plan" and type(value) is types.ModuleType:  # the import system binds the subpackage
            value.__class__ = _PlanPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Runbook
if "runbook.plan" in sys.modules:  # imported before this module finished (never in practice)
    sys.modules[__name__].plan = sys.modules["runbook.plan"]


def __getattr__(name: str) -> Any:
    if name == "plan":
        try:
            return importlib.import_module("runbook.plan")  # the callable package (see _PlanPackage)
        except ModuleNotFoundError:  # no planning package of that name (any more): the function
            return importlib.import_module("runbook.session.api").plan
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'runbook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, "plan"})
