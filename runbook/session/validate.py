"""Validate runbooks without running them: the one place that turns a ValidateRequest into the
problems `runbook validate` reports. Everything that can be rendered before a run is rendered for
every targeted host, with the same magic variables a run gives (runbook.execute.magic)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook.errors import RunbookError, ValidationError
from runbook.session import project
from runbook.session.request import ValidateRequest
from runbook.session.result import RunbookCheck, Validation

if TYPE_CHECKING:
    from runbook.model.inventory_view import InventoryView
    from runbook.model.runbook import Runbook


def runbook_paths(request: ValidateRequest) -> list[Path]:
    """The runbooks to check: the ones named, else every runbook of the search path."""
    paths = [project.resolve_runbook(str(n)) for n in request.runbooks] or sorted(
        {p for d in project.search_path() if d.is_dir() for p in d.glob("*.y*ml")}
    )
    if not paths:
        raise RunbookError("no runbooks to validate", hint="give NAME or create playbooks/*.yml")
    return paths


def checks(request: ValidateRequest) -> Iterator[RunbookCheck]:
    """Each runbook's check, one at a time (a front end reports each as it comes). Errors that stop
    everything (no runbook, an unreadable inventory, bad -e) are raised before the first."""
    paths = runbook_paths(request)
    inventory = project.request_inventory(request, tuple(request.inventory), paths[0].parent)
    declared = project.secret_names(tuple(request.secrets))
    extra_vars = project.given_vars(request, declared)
    for path in paths:
        yield check_one(path, inventory, request.limit, extra_vars, declared)


def check_one(
    path: Path, inventory: Any, limit: str | None, extra_vars: dict[str, Any], declared: set[str]
) -> RunbookCheck:
    from runbook.kinds.base import KnownModules
    from runbook.kinds.shellvars import unquoted_shell_vars
    from runbook.model.runbook import load_runbook
    from runbook.plan import validate as v

    try:
        rb = load_runbook(path, KnownModules())
    except ValidationError as exc:
        return RunbookCheck(path, problems=list(v.validation_errors(exc)))
    check = RunbookCheck(path, lint_warnings=[str(w) for w in unquoted_shell_vars(rb)])
    problems = v.check_static(rb)
    if not problems:
        try:
            hosts = project.select_hosts(rb, inventory, limit)
        except RunbookError as exc:
            problems.append(v.Problem(exc))
        else:
            problems += host_problems(rb, inventory, hosts, extra_vars, project.project_dir_for(path), declared)
    check.problems = problems
    check.undo_warnings = [str(w) for w in v.undo_warnings(rb)]
    check.steps = len(rb.all_steps())
    return check


def validate(request: ValidateRequest) -> Validation:
    """Every runbook's check, collected."""
    return Validation(list(checks(request)))


def host_problems(
    rb: Runbook,
    inventory: InventoryView,
    hosts: list[str],
    extra_vars: dict[str, Any],
    project_dir: Path,
    declared: set[str] | frozenset[str] = frozenset(),
) -> list[Any]:
    """Render everything that can be rendered before a run, for every host (undefined variables,
    template files, loops): validate reports these, and exec can refuse to start on them. Their
    messages are redacted: no secret in a validation error."""
    from runbook.execute.magic import Play, host_magic, operator
    from runbook.model.hostpattern import implicit_host_vars
    from runbook.plan import validate as v
    from runbook.render.secrets import Redactor, collect_secrets, register_origins
    from runbook.render.templar import LazyVars, Templar

    redactor = register_origins(
        Redactor(), runbook=rb, inventory=inventory, extra_vars=extra_vars, declared=declared
    )
    templar = Templar(redactor)
    problems: list[Any] = []
    seen: set[str] = set()
    groups = {g: inventory.select(g) for g in inventory.groups}  # once, not once per host
    play = Play(hosts, lambda h: False)
    # what a run's `run` holds (runbook.execute.engine): its id and status are known at run time
    run = {"id": "validate", "status": "running", "dry_run": True, "runbook": rb.name, "operator": operator()}
    hostvars = v.HostVarsBefore(inventory, rb, extra_vars)
    for host in hosts:
        known = host in inventory.hosts
        hv = implicit_host_vars(host, inventory.host_vars(host) if known else None)
        magic = dict(host_magic(  # a plain dict: nothing changes while validating, and it is faster
            host, inventory, play=play, hostvars=hostvars, run=run, runbook_dir=rb.path.parent, dry_run=True,
            state=None, groups=groups,
        ))  # fmt: skip
        layers = [
            (extra_vars, False),
            (magic, True),
            (dict(rb.vars), False),
            (hv, False),
            (dict(rb.defaults), False),
        ]
        redactor.add(collect_secrets(hv, names=redactor.names))
        for p in v.check_host(rb, LazyVars(layers, templar), templar, host, project_dir):
            p.error.message = redactor.redact(p.error.message)
            if p.error.hint:
                p.error.hint = redactor.redact(p.error.hint)
            key = str(p.error)
            if key not in seen:  # the same problem on 500 hosts is reported once
                seen.add(key)
                problems.append(p)
    return problems
