"""exec / plan / rollback: flags -> a request of runbook.session, which runs it; then the report
(recap, JSON, JUnit). The terminal's parts (console renderer, prompts, signals) are hooks of the run."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runbook.cli.common import complete_runbooks, handle_errors, request_fields
from runbook.cli.vaultopts import ansible_options
from runbook.errors import Aborted, UsageError

if TYPE_CHECKING:
    from runbook.session import RunRequest
from runbook.cli.verbosity import HELP as VERBOSE_HELP


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
        click.option("-v", "--verbose", count=True, help=VERBOSE_HELP),
        click.option("--diff", "diff", is_flag=True, help="Show the diff of every file a step writes (as ansible --diff)."),
        click.option(
            "--engine", type=click.Choice(["native", "ansible"]), default="native", show_default=True,
            help="Run on runbook's own engine, or as the compiled playbook through ansible-runner "
            "(docs/ansible-engine.md).",
        ),
        click.option("--step", "step", is_flag=True, help="Confirm each step before it runs: (y)es/(n)o/(c)ontinue (needs a terminal)."),
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
@ansible_options(run=True)
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
@ansible_options(run=True)
def plan_cmd(**kw: Any) -> None:
    """Dry-run NAME: probe for real, show every command and file diff, change nothing."""
    sys.exit(_execute(dry_run=True, start_at=None, resume=None, **kw))


# The run's flags are RunRequest fields, passed by name (common.request_fields: a new option is one
# click.option here + one field of runbook.session.request.RunRequest). The front end's own flags
# (how the outcome is shown) stay here.
_FRONT_END = ("output", "junit_file", "verbose", "list_hosts", "list_steps", "step")


def _execute(**kw: Any) -> int:
    """exec/plan: the flags as a RunRequest, the session runs it, the outcome rendered as asked."""
    from runbook.session import RunRequest

    shown = {k: kw.pop(k) for k in _FRONT_END if k in kw}
    request = RunRequest(**request_fields(kw))
    return run_request(request, **shown)


def run_request(request: RunRequest, *, output: str = "text", junit_file: str | None = None, verbose: int = 0,
                list_hosts: bool = False, list_steps: bool = False, step: bool = False) -> int:  # fmt: skip
    """Run a RunRequest from the terminal: the console renderer, prompts and signal handling as
    hooks of the session, then the recap (or JSON, JUnit) of its outcome. Returns the exit code."""
    from runbook.session import run as session

    # the connects the run makes first thing begin now (not for a listing; not with --step: the
    # operator may decline the first step); every way out below closes those no step adopted
    target = session.prepare(request, connect_early=not (list_hosts or list_steps or step))
    try:
        return _run_target(session, target, output=output, junit_file=junit_file, verbose=verbose,
                           list_hosts=list_hosts, list_steps=list_steps, step=step)  # fmt: skip
    finally:
        target.close()


def _run_target(session: Any, target: Any, *, output: str, junit_file: str | None, verbose: int,
                list_hosts: bool, list_steps: bool, step: bool) -> int:  # fmt: skip
    from runbook.cli.approvers import ask_name
    from runbook.cli.output import json_document, junit_xml
    from runbook.cli.stepping import step_gate
    from runbook.session import Hooks

    request = target.request
    rb, path, dry_run = target.runbook, target.path, request.dry_run
    if list_hosts or list_steps:  # as ansible-playbook --list-hosts/--list-tasks: nothing runs
        from runbook.cli.listing import list_hosts as show_hosts
        from runbook.cli.listing import list_steps as show_steps

        click.echo(f"runbook: {rb.name} ({path})")
        if list_hosts:
            show_hosts(rb, target.hosts)
        if list_steps:
            show_steps(rb)
        return 0
    machine = output != "text"
    console = None
    if not machine or verbose:  # rich only when a human reads the output (json/junit: stdout is data)
        from runbook.cli.console import ConsoleRenderer, make_console, recap

        console = make_console(stderr=machine)
    interactive = sys.stdin.isatty() and not machine
    renderer: Any = None

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

    def observers() -> list[Any]:
        nonlocal renderer
        renderer = ConsoleRenderer(console, verbose=verbose) if console is not None else None
        return [renderer] if renderer else []

    hooks = Hooks(
        observers=observers, confirm=confirm if interactive else None,
        ask_name=ask_approver if interactive else None, around_run=lambda: _terminal(verbose), warn=_warn,
        step_gate=step_gate(interactive, lambda: renderer) if step else None,
    )  # fmt: skip
    outcome = session.execute(target, hooks)
    result, audit_path = outcome.result, outcome.audit_path
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
    return outcome.exit_code


def _warn(text: str) -> None:
    click.secho(text, fg="red", err=True)


@contextlib.contextmanager
def _terminal(verbose: int) -> Iterator[None]:
    """While the engine runs: SIGTERM and SIGINT handled as interrupts, -vvv's debug log on."""
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, _Interrupts())
    debug = _debug_log(verbose)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        if debug is not None:
            debug()


def _quiet(renderer: Any) -> Any:
    """While a prompt waits for the operator, the live progress display stands still."""
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
@ansible_options(run=True)
def rollback_cmd(yes: bool, output: str, **kw: Any) -> None:
    """Undo what run RUN_ID changed, from its saved snapshots (in reverse order).

    A run with nothing left to undo exits 0; if it died holding a host's deploy lock (its process
    gone from this machine), that lock is released, said and audited."""
    from runbook.cli.console import ConsoleRenderer, make_console, recap
    from runbook.cli.output import json_document
    from runbook.session import Hooks, RollbackRequest
    from runbook.session import rollback as session

    request = RollbackRequest(**request_fields(kw))
    target = session.prepare(request)
    console = make_console(stderr=output == "json")
    if not target.todo:  # nothing to undo; a dead run may still hold its hosts' deploy lock: release it
        console.print(f"run {target.state.run_id}: nothing to roll back")
    for h, es in target.todo.items():
        console.print(f"{h}: will undo " + ", ".join(e.name for e in reversed(es)))
    if target.todo and not yes and not (sys.stdin.isatty() and click.confirm("Proceed?", default=False)):
        raise UsageError("rollback not confirmed", hint="pass --yes to roll back without asking")
    outcome = session.execute(target, Hooks(observers=lambda: [ConsoleRenderer(console)], warn=_warn))
    if output == "json":
        click.echo(json_document(outcome.result, target.runbook, outcome.audit_path, False))
    else:
        recap(console, outcome.result, outcome.audit_path)
    sys.exit(outcome.exit_code)
