"""Roll a finished run back from its saved snapshots: the one place that turns a RollbackRequest
into a rollback. ``prepare`` finds the run and what is left to undo (a front end shows it and asks);
``execute`` loads the run's inventory and extra vars (given ones on top), and undoes it in reverse."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.session import project
from runbook.session.request import Hooks, RollbackRequest
from runbook.session.result import Outcome
from runbook.session.run import drive, transport_options


@dataclass
class RollbackTarget:
    request: RollbackRequest
    path: Path
    runbook: Any  # runbook.model.runbook.Runbook
    state: Any  # runbook.execute.state.RunState of the run to undo
    todo: dict[str, list[Any]]  # host -> its state entries not rolled back yet, in the order they ran


def prepare(request: RollbackRequest) -> RollbackTarget:
    from runbook.execute.state import RunState
    from runbook.kinds.base import KnownModules
    from runbook.model.runbook import load_runbook

    path = project.resolve_runbook(str(request.runbook))
    rb = load_runbook(path, KnownModules())
    state = RunState.load(request.state_root, request.run_id)
    project.same_runbook(state, path)
    todo = {h: [e for e in s.entries if e.status not in ("rolled_back",)] for h, s in state.hosts.items()}
    todo = {h: es for h, es in todo.items() if es}
    return RollbackTarget(request=request, path=path, runbook=rb, state=state, todo=todo)


def nothing_to_do(target: RollbackTarget) -> Outcome:
    """The outcome of a rollback with nothing left to undo (exit 0)."""
    from runbook.execute.runresult import RunResult

    now = time.time()
    result = RunResult(
        run_id=target.state.run_id, status="success", exit_code=0, hosts={}, started=now, ended=now,
        message=f"run {target.state.run_id}: nothing to roll back",
    )  # fmt: skip
    return Outcome(runbook=target.runbook, path=target.path, result=result)


def execute(target: RollbackTarget, hooks: Hooks | None = None) -> Outcome:
    from runbook.execute.engine import Engine, RunOptions

    hooks = hooks or Hooks()
    if not target.todo and not target.runbook.lock:
        return nothing_to_do(target)  # (with a deploy lock, the engine releases a dead run's own)
    req, state = target.request, target.state
    declared = project.secret_names(tuple(req.secrets)) | set(state.meta.get("secret_extra_vars") or ())
    declared |= set(state.meta.get("secret_names") or ())
    given = project.given_vars(req, declared)
    extra_vars = project.restore_extra_vars(state, given, "rollback")
    inventories = tuple(req.inventory) or tuple(state.meta.get("inventory") or ())
    inventory = project.request_inventory(req, inventories, target.path.parent)
    options = RunOptions(
        yes=True,
        extra_vars=extra_vars,
        transport_options=transport_options(req.trust_new_hosts, req.known_hosts),
        project_dir=project.project_dir_for(target.path),
        state_root=req.state_root,
        run_id=f"{state.run_id}-rollback",
        resume=state,
        inventory_sources=project.inventory_sources(inventories),
        limit=state.meta.get("limit"),
        secret_names=frozenset(declared),
        transport_factory=hooks.transport_factory,
    )
    return drive(
        lambda redactor, bus: Engine(target.runbook, inventory, list(target.todo) or list(state.hosts), options, bus, redactor),
        lambda engine: engine.rollback_run(),
        target.runbook, target.path, req, hooks, dry_run=False,
    )  # fmt: skip


def rollback(request: RollbackRequest, hooks: Hooks | None = None) -> Outcome:
    """Prepare and execute ``request`` (without asking: the caller decided)."""
    return execute(prepare(request), hooks)
