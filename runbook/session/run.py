"""Run or plan one runbook: the one place that turns a RunRequest into a run.

Two steps, so a front end can act between them (the CLI's --list-hosts/--list-steps stop after the
first): ``prepare`` loads and checks the runbook, merges a resumed run's inventory, limit and extra
vars, loads the inventory and selects the hosts (with ``connect_early``, the connects the run makes
first thing begin there, before the runbook's static checks: runbook.execute.early); ``execute``
refuses outside the maintenance window, builds the run's options, redactor, event bus, engine and
audit writer once, runs, seals the audit trail, closes the early connections no step adopted and
returns the Outcome with every known secret masked."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runbook.errors import AuditError, Location, RefusedError, UsageError, ValidationError
from runbook.session import project
from runbook.session.request import Hooks, RollbackRequest, RunRequest
from runbook.session.result import Outcome


@dataclass
class Target:
    """A prepared run: the loaded runbook, the inventory and the hosts it targets, and the inputs
    as they stand after a resumed run's own were merged in."""

    request: RunRequest
    path: Path
    runbook: Any  # runbook.model.runbook.Runbook
    inventory: Any  # runbook.model.inventory.Inventory
    hosts: list[str]
    extra_vars: dict[str, Any]
    secret_names: frozenset[str]
    inventory_sources: tuple[str, ...]
    limit: str | None
    resume_state: Any = None  # runbook.execute.state.RunState of the run resumed
    project_dir: Path = field(default_factory=Path.cwd)
    # the connects begun early (runbook.execute.early): the run adopts them; None: none were
    connections: Any = None

    def close(self) -> None:
        """Close the early connections no step has adopted (every way out of a run calls it)."""
        if self.connections is not None:
            self.connections.close()


def load_checked(path: Path) -> Any:
    """The runbook at ``path``, statically checked: every problem is raised as one ValidationError."""
    rb = load_unchecked(path)
    check(rb)
    return rb


def load_unchecked(path: Path) -> Any:
    """The runbook at ``path``, parsed (its static checks: ``check``)."""
    from runbook.kinds.base import KnownModules
    from runbook.model.runbook import load_runbook

    return load_runbook(path, KnownModules())


def check(rb: Any) -> None:
    """The runbook's static checks: every problem is raised as one ValidationError."""
    from runbook.plan import validate as v

    problems = v.check_static(rb)
    if problems:
        exc = ValidationError(
            problems[0].error.message, location=problems[0].error.location, hint=problems[0].error.hint
        )
        exc.errors = [p.error for p in problems]  # type: ignore[attr-defined]
        raise exc


def prepare(request: RunRequest, *, connect_early: bool = False) -> Target:
    """Load and check the runbook, the inventory and the hosts. ``connect_early``: the run will
    follow (``execute``): the connects it makes first thing begin now, before the runbook's static
    checks (``connect_early`` below); the Target's ``close`` (``execute`` calls it) closes them."""
    path = project.resolve_runbook(str(request.runbook))
    rb = load_unchecked(path)
    try:
        target = _prepare(request, path, rb)
    except Exception:
        check(rb)  # the runbook's own problems come first, as they always did
        raise
    try:
        if connect_early:
            start_connections(target)
        check(rb)
    except BaseException:  # a validation error, Ctrl-C: the connects begun are ended and closed
        target.close()
        raise
    return target


def _prepare(request: RunRequest, path: Path, rb: Any) -> Target:
    from runbook.execute.state import RunState

    resume_state = RunState.load(request.state_root, request.resume) if request.resume else None
    declared = project.secret_names(tuple(request.secrets))
    extra_vars = project.given_vars(request, declared)
    inventories = tuple(request.inventory)
    limit = request.limit
    if resume_state is not None:  # the run's own inventory and -e, unless given again
        declared |= set(resume_state.meta.get("secret_extra_vars") or ())
        declared |= set(resume_state.meta.get("secret_names") or ())
        project.same_runbook(resume_state, path)
        inventories = inventories or tuple(resume_state.meta.get("inventory") or ())
        limit = limit or resume_state.meta.get("limit")  # the same hosts as the run it continues
        extra_vars = project.restore_extra_vars(resume_state, extra_vars, "--resume")
    inventory = project.request_inventory(request, inventories, path.parent)
    hosts = project.select_hosts(rb, inventory, limit)
    if not hosts:
        raise UsageError(
            f"no hosts match '{rb.hosts}'" + (f" with --limit {limit}" if limit else ""),
            hint="check -i/--inventory and the runbook's hosts:",
        )
    return Target(
        request=request, path=path, runbook=rb, inventory=inventory, hosts=hosts, extra_vars=extra_vars,
        secret_names=frozenset(declared), inventory_sources=inventories, limit=limit,
        resume_state=resume_state, project_dir=project.project_dir_for(path),
    )  # fmt: skip


def start_connections(target: Target) -> None:
    """Begin the connects the run makes first thing (runbook.execute.early: which hosts, with which
    variables), in threads, into ``target.connections``. None begin for a dry run (a plan connects
    only where its probes need it), --resume, the ansible engine, a maintenance window that refuses
    the run, or options the run will refuse (--max-output)."""
    req, rb = target.request, target.runbook
    if req.dry_run or req.resume or req.engine == "ansible":
        return
    try:
        check_window(target)
        options = transport_options(req.trust_new_hosts, req.known_hosts, req.max_output)
    except (RefusedError, UsageError):
        return  # the run refuses it (execute), having connected nowhere
    from runbook.execute.early import connect_early
    from runbook.execute.magic import SPEC_MAGIC
    from runbook.execute.transports.pool import Connections
    from runbook.model import inventory as inventories

    target.connections = Connections(options, ignore_vars=SPEC_MAGIC)  # before any connect begins
    forks = inventories.forks(req.forks, rb.forks, target.inventory)
    connect_early(
        target.connections, rb, target.inventory, target.hosts, extra_vars=target.extra_vars,
        tags=req.tags, skip_tags=req.skip_tags, start_at=req.start_at, forks=forks,
    )  # fmt: skip


def check_window(target: Target) -> None:
    """Outside the runbook's maintenance window a (real) run is refused before any change."""
    req, rb = target.request, target.runbook
    if rb.window and not req.dry_run and not req.force_window:
        from runbook.execute.window import inside

        ok, desc = inside(rb.window)
        if not ok:
            raise RefusedError(
                f"outside the {desc}: refused, nothing was changed",
                hint="wait for the window, or pass --force-window",
            )


def transport_options(
    trust_new_hosts: bool, known_hosts: str | None, max_output: str | int | None = None
) -> dict[str, Any]:
    """The options every host's transport is made with (SSH host keys, the output cap)."""
    options: dict[str, Any] = {"trust_new_hosts": trust_new_hosts}
    if known_hosts:
        options["known_hosts"] = known_hosts
    if max_output:
        from runbook.execute.transports.capture import parse_size

        try:
            options["max_output"] = parse_size(str(max_output))
        except ValueError as exc:
            raise UsageError(f"--max-output: {exc}", hint="a size such as 1M, 256k or 1048576") from None
    return options


def run_options(target: Target, hooks: Hooks) -> Any:
    """The engine's RunOptions for a prepared run."""
    from runbook.execute.engine import RunOptions
    from runbook.session.approvers import identities

    req, resume_state = target.request, target.resume_state
    return RunOptions(
        dry_run=req.dry_run, yes=req.yes, tags=req.tags, skip_tags=req.skip_tags,
        extra_vars=target.extra_vars, forks=req.forks, start_at=req.start_at,
        project_dir=target.project_dir, state_root=req.state_root,
        transport_options=transport_options(req.trust_new_hosts, req.known_hosts, req.max_output),
        confirm=hooks.confirm, run_id=resume_state.run_id + "-resume" if resume_state else None,
        resume=resume_state, inventory_sources=project.inventory_sources(target.inventory_sources),
        limit=target.limit, secret_names=target.secret_names,
        approvers=identities(tuple(req.approvers), req.audit_key), ask_name=hooks.ask_name,
        transport_factory=hooks.transport_factory, diff=req.diff, step_gate=hooks.step_gate,
        connections=target.connections,
    )  # fmt: skip


def execute(target: Target, hooks: Hooks | None = None) -> Outcome:
    """Run a prepared run (a dry run when the request says so) and return how it ended."""
    hooks = hooks or Hooks()
    try:
        check_window(target)
        options = run_options(target, hooks)
        req = target.request
        return drive(
            make_engine(target, options), lambda engine: engine.run(),
            target.runbook, target.path, req, hooks, dry_run=req.dry_run,
        )  # fmt: skip
    finally:
        target.close()  # early connections: the engine closed those it adopted


def make_engine(target: Target, options: Any) -> Callable[[Any, Any], Any]:
    """The engine the request asks for, as ``make(redactor, bus)``: runbook's own, or the compiled
    playbook through ansible-runner (runbook.session.ansible_engine)."""
    if target.request.engine == "ansible":
        from runbook.session.ansible_engine import AnsibleEngine

        return lambda redactor, bus: AnsibleEngine(target, options, bus, redactor)
    from runbook.execute.engine import Engine

    return lambda redactor, bus: Engine(target.runbook, target.inventory, target.hosts, options, bus, redactor)


def drive(
    make_engine: Callable[[Any, Any], Any],
    go: Callable[[Any], Any],
    rb: Any,
    path: Path,
    req: RunRequest | RollbackRequest,
    hooks: Hooks,
    *,
    dry_run: bool,
) -> Outcome:
    """The part a run and a rollback share: the redactor and event bus, the engine, the observers and
    the audit writer subscribed (in that order), the run itself (``go(engine)``: run or rollback_run),
    then everything closed and sealed, and the result redacted. ``make_engine(redactor, bus)``."""
    from runbook.execute.events import EventBus
    from runbook.render.secrets import Redactor

    redactor = Redactor()
    bus = EventBus()
    engine = make_engine(redactor, bus)
    observers = list(hooks.observers()) if hooks.observers else []
    for o in observers:
        bus.subscribe(o)
    writer = None
    if not dry_run:
        writer = audit_writer(req, redactor)
        if writer is not None:
            bus.subscribe(writer)
    audit_error = None
    try:
        if hooks.around_run is not None:
            with hooks.around_run():
                result = go(engine)
        else:
            result = go(engine)
    finally:
        for o in observers:
            close = getattr(o, "close", None)
            if close is not None:
                close()
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:  # the run's outcome stands; say the audit could not be sealed
                audit_error = f"audit: could not seal the run: {exc}"
                if hooks.warn is not None:
                    hooks.warn(audit_error)
    audit_path = str(writer.path) if writer is not None and getattr(writer, "path", None) else None
    redact_result(result, redactor)
    return Outcome(
        runbook=rb, path=path, result=result, dry_run=dry_run, audit_path=audit_path, audit_error=audit_error
    )


def redact_result(result: Any, redactor: Any) -> None:
    """Every secret known by the end of the run masked in the records the reports are made of."""
    for hr in result.hosts.values():
        hr.failure = redactor.redact(hr.failure)
        for rec in hr.records:
            rec.redact(redactor.redact)
    result.message = redactor.redact(result.message)


def audit_writer(req: RunRequest | RollbackRequest, redactor: Any) -> Any:
    """The audit writer a request asks for (None: audit off); one that cannot write is a refusal."""
    enabled = req.audit if req.audit is not None else os.environ.get("RUNBOOK_AUDIT", "1") != "0"
    if not enabled:
        return None
    directory, key, dsn = req.audit_dir, req.audit_key, req.audit_dsn
    try:
        from runbook.audit.writer import AuditWriter
    except ImportError:  # pragma: no cover - audit package missing
        return None
    if key is None:
        from runbook.audit.paths import default_key_path

        default = Path(default_key_path())
        key = str(default) if default.exists() else None
    sinks = []
    try:
        if dsn:
            from runbook.audit.sinks.postgres import PostgresSink

            sinks.append(PostgresSink(dsn))
        return AuditWriter(directory, signing_key=key, redact=redactor.redact, sinks=sinks)
    except (AuditError, OSError) as exc:  # in use, read-only, full: refused before any change
        text = exc.message if isinstance(exc, AuditError) else f"{exc.strerror or exc}"
        where = exc.location if isinstance(exc, AuditError) else Location(directory)
        hint = exc.hint if isinstance(exc, AuditError) and exc.hint else "fix the audit directory, or give --audit-dir"
        raise RefusedError(f"audit trail cannot be written: {text}; nothing was changed", location=where, hint=hint) from None


def run(request: RunRequest, hooks: Hooks | None = None) -> Outcome:
    """Prepare and execute ``request`` (connecting early, unless a transport factory or --step
    gate of the caller's decides how or whether hosts are reached)."""
    early = hooks is None or (hooks.transport_factory is None and hooks.step_gate is None)
    return execute(prepare(request, connect_early=early), hooks)


def plan(request: RunRequest, hooks: Hooks | None = None) -> Outcome:
    """A dry run of ``request``: probes run for real, commands and diffs are shown, nothing changes
    (as ``runbook plan``: never resumed, never started part-way)."""
    return run(replace(request, dry_run=True, start_at=None, resume=None), hooks)
