"""exec / plan / rollback: wire runbook + inventory + engine + subscribers, then report."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from runbook.cli.common import (
    complete_runbooks,
    handle_errors,
    load_inventory,
    parse_extra_vars,
    project_dir_for,
    resolve_runbook,
    restore_extra_vars,
    secret_names,
    select_hosts,
)
from runbook.errors import Aborted, AuditError, Location, RefusedError, UsageError, ValidationError


def _run_options(fn: Any) -> Any:
    opts = [
        click.argument("name", shell_complete=complete_runbooks),
        click.option(
            "-i",
            "--inventory",
            "inventories",
            multiple=True,
            help="Inventory file, directory or 'h1,h2,' (repeatable).",
        ),
        click.option("-l", "--limit", help="Further limit the hosts (an inventory pattern)."),
        click.option(
            "-e",
            "--extra-vars",
            "extra",
            multiple=True,
            help="key=value, a JSON/YAML mapping, or @file (highest precedence; an ansible-vault "
            "encrypted file's values are all secrets).",
        ),
        click.option(
            "--secret",
            "secret",
            multiple=True,
            metavar="NAME",
            help="Treat variable NAME as a secret whatever its name (repeatable; masked everywhere).",
        ),
        click.option("-t", "--tags", default="", help="Only run steps with these tags (comma-separated)."),
        click.option("--skip-tags", default="", help="Skip steps with these tags."),
        click.option("-f", "--forks", type=int, help="Hosts in parallel (default: runbook's forks or 10)."),
        click.option(
            "--output",
            "output",
            type=click.Choice(["text", "json", "junit"]),
            default="text",
            help="Result format on stdout.",
        ),
        click.option(
            "--junit-file", type=click.Path(dir_okay=False), help="Also write a JUnit XML report here."
        ),
        click.option(
            "-y", "--yes", is_flag=True, help="Answer yes to approvals and to rollback on interrupt."
        ),
        click.option(
            "--approver",
            "approver",
            multiple=True,
            metavar="NAME",
            help="Who approves the `approve` steps (repeatable; default $RUNBOOK_APPROVER, else the "
            "audit key's principal, else user@host); with --yes, these are the approvals recorded.",
        ),
        click.option(
            "--trust-new-hosts",
            is_flag=True,
            help="Record unknown SSH host keys (changed keys are still refused).",
        ),
        click.option(
            "--known-hosts",
            type=click.Path(dir_okay=False),
            help="known_hosts file (default ~/.ssh/known_hosts).",
        ),
        click.option(
            "--audit-dir",
            default=lambda: os.environ.get("RUNBOOK_AUDIT_DIR", "audit"),
            show_default="audit",
            help="Where audit run files go.",
        ),
        click.option(
            "--audit-key",
            type=click.Path(dir_okay=False),
            envvar="RUNBOOK_AUDIT_KEY",
            help="Ed25519 (or OpenSSH ed25519) signing key for the audit trail.",
        ),
        click.option(
            "--audit-dsn",
            envvar="RUNBOOK_AUDIT_DSN",
            help="Also write audit records to this PostgreSQL database.",
        ),
        click.option("--force-window", is_flag=True, help="Run outside the runbook's maintenance window."),
        click.option(
            "--max-output",
            default=None,
            help="Output kept per stream of each command (head and tail, e.g. 1M, 256k; default 1M; "
            "a host's runbook_max_output wins). The rest is elided with a marker; its sha256 is audited.",
        ),
        click.option(
            "--list-hosts", is_flag=True,
            help="List the hosts the run would target (and its serial batches); run nothing.",
        ),
        click.option(
            "--list-steps", is_flag=True,
            help="List the steps of every phase with their modules and tags; run nothing.",
        ),
        click.option(
            "-v", "--verbose", count=True,
            help="Show skipped steps and messages (-vvv: the traceback of an unexpected error).",
        ),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


@click.command("exec")
@_run_options
@click.option(
    "--dry-run",
    "-C",
    "--check",
    is_flag=True,
    help="Plan only: run read-only probes, show commands and diffs.",
)
@click.option(
    "--start-at",
    help="Start at this step (its name, or its number as `runbook show` lists it) of the steps phase.",
)
@click.option("--resume", "resume", help="Resume a failed/interrupted run from its saved state.")
@handle_errors
def exec_cmd(**kw: Any) -> None:
    """Run runbook NAME (playbooks/NAME.yml) against the inventory.

    \b
    Exit codes:
      0    success
      1    a step failed and rollback succeeded
      2    usage or validation error
      3    pre-flight failed, or refused before any change (window closed,
           deploy lock held, host key unknown/changed, host unreachable, audit
           directory in use or not writable, .runbook/ not writable, approval
           declined): nothing changed
      4    rollback failed (a human must act)
      5    the audit trail or the run state could not be written (disk full,
           read-only): the run stopped and rolled back what it had changed
      130  interrupted
    """
    sys.exit(_execute(**kw))


@click.command("plan")
@_run_options
@handle_errors
def plan_cmd(**kw: Any) -> None:
    """Dry-run NAME: probe for real, show every command and file diff, change nothing."""
    sys.exit(_execute(dry_run=True, start_at=None, resume=None, **kw))


def _execute(name: str, inventories: tuple[str, ...], limit: str | None, extra: tuple[str, ...], secret: tuple[str, ...], tags: str, skip_tags: str,
             forks: int | None, output: str, junit_file: str | None, yes: bool, trust_new_hosts: bool, known_hosts: str | None,
             audit_dir: str, audit_key: str | None, audit_dsn: str | None, force_window: bool, verbose: int,
             max_output: str | None, dry_run: bool, start_at: str | None, resume: str | None,
             approver: tuple[str, ...] = (), list_hosts: bool = False, list_steps: bool = False) -> int:  # fmt: skip
    from runbook.cli.approvers import ask_name, identities
    from runbook.cli.output import json_document, junit_xml
    from runbook.execute.engine import Engine, RunOptions
    from runbook.execute.events import EventBus
    from runbook.execute.state import RunState
    from runbook.plan import validate as v
    from runbook.render.secrets import Redactor

    path = resolve_runbook(name)
    rb = v.load(path)
    problems = v.check_static(rb)
    if problems:
        exc = ValidationError(
            problems[0].error.message, location=problems[0].error.location, hint=problems[0].error.hint
        )
        exc.errors = [p.error for p in problems]  # type: ignore[attr-defined]
        raise exc
    state_root = Path(".runbook")
    resume_state = RunState.load(state_root, resume) if resume else None
    declared = secret_names(secret)
    extra_vars = parse_extra_vars(extra, declared)
    if resume_state is not None:  # the run's own inventory and -e, unless given again
        declared |= set(resume_state.meta.get("secret_extra_vars") or ())
        declared |= set(resume_state.meta.get("secret_names") or ())
        _same_runbook(resume_state, path)
        inventories = inventories or tuple(resume_state.meta.get("inventory") or ())
        limit = limit or resume_state.meta.get("limit")  # the same hosts as the run it continues
        extra_vars = restore_extra_vars(resume_state, extra_vars, "--resume")
    inventory = load_inventory(inventories, playbook_dir=path.parent)
    hosts = select_hosts(rb, inventory, limit)
    if not hosts:
        raise UsageError(
            f"no hosts match '{rb.hosts}'" + (f" with --limit {limit}" if limit else ""),
            hint="check -i/--inventory and the runbook's hosts:",
        )
    if list_hosts or list_steps:  # as ansible-playbook --list-hosts/--list-tasks: nothing runs
        from runbook.cli.listing import list_hosts as show_hosts
        from runbook.cli.listing import list_steps as show_steps

        click.echo(f"runbook: {rb.name} ({path})")
        if list_hosts:
            show_hosts(rb, hosts)
        if list_steps:
            show_steps(rb)
        return 0
    if rb.window and not dry_run and not force_window:
        from runbook.execute.window import inside

        ok, desc = inside(rb.window)
        if not ok:
            raise RefusedError(
                f"outside the {desc}: refused, nothing was changed",
                hint="wait for the window, or pass --force-window",
            )
    machine = output != "text"
    console = None
    if not machine or verbose:  # rich only when a human reads the output (json/junit: stdout is data)
        from runbook.cli.console import ConsoleRenderer, make_console, recap

        console = make_console(stderr=machine)
    interactive = sys.stdin.isatty() and not machine

    def confirm(question: str) -> bool:
        if not interactive:
            return False
        from rich.prompt import Prompt

        from runbook.cli.console import escape, make_console

        with _quiet(renderer):
            answer = Prompt.ask(
                f"[bold]{escape(question)}[/] Type [bold]yes[/] to confirm", console=make_console(stderr=True), default="no"
            )
        return answer.strip().lower() == "yes"

    def ask_approver(question: str, default: str) -> str:
        with _quiet(renderer):
            return ask_name(question, default)

    renderer: Any = None

    transport_options: dict[str, Any] = {"trust_new_hosts": trust_new_hosts}
    if known_hosts:
        transport_options["known_hosts"] = known_hosts
    if max_output:
        from runbook.execute.transports.capture import parse_size

        try:
            transport_options["max_output"] = parse_size(max_output)
        except ValueError as exc:
            raise UsageError(f"--max-output: {exc}", hint="a size such as 1M, 256k or 1048576") from None
    redactor = Redactor()
    bus = EventBus()
    options = RunOptions(
        dry_run=dry_run, yes=yes, tags=_split(tags), skip_tags=_split(skip_tags), extra_vars=extra_vars,
        forks=forks, start_at=start_at, project_dir=project_dir_for(path), state_root=state_root,
        transport_options=transport_options, confirm=confirm if interactive else None,
        run_id=resume_state.run_id + "-resume" if resume_state else None, resume=resume_state,
        inventory_sources=_sources(inventories), limit=limit, secret_names=frozenset(declared),
        approvers=identities(approver, audit_key), ask_name=ask_approver if interactive else None,
    )  # fmt: skip
    engine = Engine(rb, inventory, hosts, options, bus, redactor)
    renderer = ConsoleRenderer(console, verbose=verbose) if console is not None else None
    if renderer:
        bus.subscribe(renderer)
    writer = None
    if not dry_run:
        writer = _audit_writer(audit_dir, audit_key, audit_dsn, redactor)
        if writer is not None:
            bus.subscribe(writer)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, _Interrupts())
    debug = _debug_log(verbose)
    try:
        result = engine.run()
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        if debug is not None:
            debug()
        if renderer:
            renderer.close()
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:  # the run's outcome stands; say the audit could not be sealed
                click.secho(f"audit: could not seal the run: {exc}", fg="red", err=True)
    audit_path = str(writer.path) if writer is not None and getattr(writer, "path", None) else None
    _redact_result(result, redactor)
    if output == "json":
        click.echo(json_document(result, rb, audit_path, dry_run))
    elif output == "junit":
        click.echo(junit_xml(result, rb), nl=False)
    elif console is not None:
        recap(console, result, audit_path)
        if dry_run:
            _say_cannot_undo(console, rb)
    if junit_file:
        try:
            Path(junit_file).write_text(junit_xml(result, rb))
        except OSError as exc:  # the run's outcome stands; its report could not be written
            click.secho(f"error: --junit-file {junit_file}: {exc.strerror or exc}", fg="red", err=True)
    return result.exit_code


def _quiet(renderer: Any) -> Any:
    """While a prompt waits for the operator, the live progress display stands still."""
    import contextlib

    return renderer.paused() if renderer is not None else contextlib.nullcontext()


def _say_cannot_undo(console: Any, rb: Any) -> None:
    """The plan names the steps whose changes a rollback could not undo (runbook.kinds.undo)."""
    from rich.markup import escape

    from runbook.kinds import undo

    gaps = list(undo.gaps(rb))
    if not gaps:
        return
    console.print(f"[yellow]{len(gaps)} step(s) a rollback cannot undo:[/]")
    for step, why in gaps:
        console.print(f"  [yellow]{escape(undo.describe(step, why))}[/]")
    console.print(f"  [dim]{escape(undo.DECLARE_HINT)}[/]")


def _debug_log(verbose: int) -> Any:
    """-vvv: the (redacted) traceback of an unexpected error inside a step goes to stderr. Returns
    what removes the handler again (None below -vvv)."""
    if verbose < 3:
        return None
    import logging

    log = logging.getLogger("runbook.execute")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)

    def remove() -> None:
        log.removeHandler(handler)
        log.setLevel(level)

    return remove


def _redact_result(result: Any, redactor: Any) -> None:
    """Every secret known by the end of the run masked in the records the reports are made of."""
    for hr in result.hosts.values():
        hr.failure = redactor.redact(hr.failure)
        for rec in hr.records:
            rec.redact(redactor.redact)
    result.message = redactor.redact(result.message)


def _sources(inventories: tuple[str, ...]) -> list[str]:
    """Inventory sources as the saved state keeps them: absolute paths (or 'h1,h2,' lists)."""
    return [s if "," in s or not Path(s).exists() else str(Path(s).resolve()) for s in inventories]


def _same_runbook(state: Any, path: Path) -> None:
    saved = state.meta.get("runbook")
    if saved and Path(saved).resolve() != path.resolve():
        raise UsageError(
            f"run {state.run_id} was a run of {saved}, not of {path}",
            hint=f"give the runbook that run used: {Path(saved).stem}",
        )


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Interrupts:
    """SIGINT during a run. First: stop starting steps, stop the running ones, roll back (with
    --yes). Second: abort at once (Aborted: no rollback; state saved, audit sealed, exit 130).
    A third while that is under way: leave now."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        if self.count == 2:
            sys.stderr.write("\ninterrupted again: aborting now (state saved; nothing rolled back)\n")
            raise Aborted("Ctrl-C twice")
        sys.stderr.write("\ninterrupted a third time: exiting\n")
        os._exit(130)


def _split(text: str) -> frozenset[str]:
    return frozenset(t.strip() for t in text.split(",") if t.strip())


def _audit_writer(directory: str, key: str | None, dsn: str | None, redactor: Any) -> Any:
    if os.environ.get("RUNBOOK_AUDIT", "1") == "0":
        return None
    try:
        from runbook.audit.writer import AuditWriter
    except ImportError:  # pragma: no cover - audit package missing
        return None
    if key is None:
        from runbook.audit.keys import default_key_path

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


@click.command("rollback")
@click.argument("name", shell_complete=complete_runbooks)
@click.option("--run", "run_id", required=True, help="The run to roll back (id or unique prefix).")
@click.option(
    "-i", "--inventory", "inventories", multiple=True, help="Inventory (default: the one the run used)."
)
@click.option(
    "-e", "--extra-vars", "extra", multiple=True, help="Extra vars (added to the ones the run used)."
)
@click.option("--secret", "secret", multiple=True, metavar="NAME", help="Treat variable NAME as a secret.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--trust-new-hosts", is_flag=True, help="Record unknown SSH host keys (changed keys are still refused)."
)
@click.option(
    "--known-hosts", type=click.Path(dir_okay=False), help="known_hosts file (default ~/.ssh/known_hosts)."
)
@click.option("--audit-dir", default=lambda: os.environ.get("RUNBOOK_AUDIT_DIR", "audit"))
@click.option("--audit-key", type=click.Path(dir_okay=False), envvar="RUNBOOK_AUDIT_KEY")
@click.option(
    "--audit-dsn", envvar="RUNBOOK_AUDIT_DSN", help="Also write audit records to this PostgreSQL database."
)
@handle_errors
def rollback_cmd(
    name: str,
    run_id: str,
    inventories: tuple[str, ...],
    extra: tuple[str, ...],
    secret: tuple[str, ...],
    yes: bool,
    output: str,
    trust_new_hosts: bool,
    known_hosts: str | None,
    audit_dir: str,
    audit_key: str | None,
    audit_dsn: str | None,
) -> None:
    """Undo what run RUN_ID changed, from its saved snapshots (in reverse order).

    A run with nothing left to undo exits 0; if it died holding a host's deploy lock (its process
    gone from this machine), that lock is released, said and audited."""
    from runbook.cli.console import ConsoleRenderer, make_console, recap
    from runbook.cli.output import json_document
    from runbook.execute.engine import Engine, RunOptions
    from runbook.execute.events import EventBus
    from runbook.execute.state import RunState
    from runbook.plan import validate as v
    from runbook.render.secrets import Redactor

    path = resolve_runbook(name)
    rb = v.load(path)
    state = RunState.load(Path(".runbook"), run_id)
    _same_runbook(state, path)
    todo = {h: [e for e in s.entries if e.status not in ("rolled_back",)] for h, s in state.hosts.items()}
    todo = {h: es for h, es in todo.items() if es}
    console = make_console(stderr=output == "json")
    if not todo:  # nothing to undo; a dead run may still hold its hosts' deploy lock: release it
        console.print(f"run {state.run_id}: nothing to roll back")
    for h, es in todo.items():
        console.print(f"{h}: will undo " + ", ".join(e.name for e in reversed(es)))
    if todo and not yes and not (sys.stdin.isatty() and click.confirm("Proceed?", default=False)):
        raise UsageError("rollback not confirmed", hint="pass --yes to roll back without asking")
    declared = secret_names(secret) | set(state.meta.get("secret_extra_vars") or ())
    declared |= set(state.meta.get("secret_names") or ())
    extra_vars = restore_extra_vars(state, parse_extra_vars(extra, declared), "rollback")
    inventories = inventories or tuple(state.meta.get("inventory") or ())
    inventory = load_inventory(inventories, playbook_dir=path.parent)
    redactor = Redactor()
    bus = EventBus()
    transport_options: dict[str, Any] = {"trust_new_hosts": trust_new_hosts}
    if known_hosts:
        transport_options["known_hosts"] = known_hosts
    options = RunOptions(
        yes=True,
        extra_vars=extra_vars,
        transport_options=transport_options,
        project_dir=project_dir_for(path),
        state_root=Path(".runbook"),
        run_id=f"{state.run_id}-rollback",
        resume=state,
        inventory_sources=_sources(inventories),
        limit=state.meta.get("limit"),
        secret_names=frozenset(declared),
    )
    engine = Engine(rb, inventory, list(todo) or list(state.hosts), options, bus, redactor)
    renderer = ConsoleRenderer(console)
    bus.subscribe(renderer)
    writer = _audit_writer(audit_dir, audit_key, audit_dsn, redactor)
    if writer is not None:
        bus.subscribe(writer)
    try:
        result = engine.rollback_run()
    finally:
        renderer.close()
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:  # the rollback's outcome stands; say the audit could not be sealed
                click.secho(f"audit: could not seal the run: {exc}", fg="red", err=True)
    _redact_result(result, redactor)
    if output == "json":
        click.echo(json_document(result, rb, str(writer.path) if writer else None, False))
    else:
        recap(console, result, str(writer.path) if writer else None)
    sys.exit(result.exit_code)
