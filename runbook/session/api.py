"""The Python API: ``runbook.run``, ``runbook.plan``, ``runbook.validate``, ``runbook.rollback``.

Each takes either a request object (RunRequest, ValidateRequest, RollbackRequest) or the runbook and
the request's fields as keyword arguments, and returns a typed result. Nothing is printed and nothing
is asked: a run that needs an answer (an `approve` step, a rollback after an interrupt) gets "no"
unless ``yes=True`` or ``approvers`` say otherwise. Errors before a run (a runbook that does not load,
an unknown inventory, a closed maintenance window) raise runbook.RunbookError subclasses; each has the
``exit_code`` the CLI would end with. What goes wrong during a run is in the Outcome, never raised."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from runbook.session.request import Hooks, RollbackRequest, RunRequest, Subscriber, ValidateRequest
from runbook.session.result import Outcome, Validation


def _hooks(hooks: Hooks | None, on_event: Subscriber | None) -> Hooks:
    hooks = hooks or Hooks()
    if on_event is not None:
        before: Callable[[], Any] | None = hooks.observers
        hooks = replace(hooks, observers=lambda: [*(before() if before else ()), on_event])
    return hooks


def run(
    runbook: str | os.PathLike[str] | RunRequest,
    /,
    *,
    hooks: Hooks | None = None,
    on_event: Subscriber | None = None,
    **options: Any,
) -> Outcome:
    """Run a runbook (``runbook exec``): preflight, steps, rollback on failure, always; audited.

    ``options`` are RunRequest fields (inventory, limit, extra_vars, vars, secrets, tags, skip_tags,
    forks, dry_run, start_at, resume, yes, approvers, force_window, max_output, trust_new_hosts,
    known_hosts, audit_dir, audit_key, audit_dsn, audit, state_root, engine). ``on_event`` is called with
    every event of the run (runbook.execute.events.Event: ``kind``, ``host``, ``data``)."""
    from runbook.session import run as session

    request = runbook if isinstance(runbook, RunRequest) else RunRequest(runbook, **options)
    if isinstance(runbook, RunRequest) and options:
        request = request.with_options(**options)
    return session.run(request, _hooks(hooks, on_event))


def plan(
    runbook: str | os.PathLike[str] | RunRequest,
    /,
    *,
    hooks: Hooks | None = None,
    on_event: Subscriber | None = None,
    **options: Any,
) -> Outcome:
    """Dry-run a runbook (``runbook plan``): probes run for real, each step's commands and diffs are
    in its StepRecord (``planned``), nothing is changed and no audit trail is written."""
    from runbook.session import run as session

    request = runbook if isinstance(runbook, RunRequest) else RunRequest(runbook, **options)
    if isinstance(runbook, RunRequest) and options:
        request = request.with_options(**options)
    return session.plan(request, _hooks(hooks, on_event))


def validate(*runbooks: str | os.PathLike[str] | ValidateRequest, **options: Any) -> Validation:
    """Statically check runbooks (``runbook validate``; all of the search path when none is named):
    schema, module arguments, templates, and undefined variables on every targeted host.
    ``options``: inventory, limit, extra_vars, vars, secrets."""
    from runbook.session.validate import validate as check

    if len(runbooks) == 1 and isinstance(runbooks[0], ValidateRequest):
        return check(runbooks[0])
    names = [r for r in runbooks if not isinstance(r, ValidateRequest)]
    return check(ValidateRequest(names, **options))


def rollback(
    runbook: str | os.PathLike[str] | RollbackRequest,
    run_id: str | None = None,
    /,
    *,
    hooks: Hooks | None = None,
    on_event: Subscriber | None = None,
    **options: Any,
) -> Outcome:
    """Undo what run ``run_id`` of ``runbook`` changed, from its saved snapshots, in reverse order
    (``runbook rollback --yes``). ``options``: inventory, extra_vars, vars, secrets, trust_new_hosts,
    known_hosts, audit_dir, audit_key, audit_dsn, audit, state_root (the inventory and extra vars
    default to the ones the run used). Nothing left to undo: exit code 0, no hosts."""
    from runbook.session import rollback as session

    if isinstance(runbook, RollbackRequest):
        request = runbook.with_options(**options) if options else runbook
    else:
        if run_id is None:
            raise TypeError("rollback() needs the run id: rollback(runbook, run_id)")
        request = RollbackRequest(runbook, run_id, **options)
    return session.rollback(request, _hooks(hooks, on_event))
