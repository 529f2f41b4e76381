"""Shared CLI plumbing: error reporting and shell completion. Runbook resolution, inventory and
extra-vars loading live in runbook.session.project (re-exported here for the commands)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from runbook.errors import RunbookError
from runbook.session.project import (
    default_inventory,
    inventory_sources,
    load_inventory,
    parse_extra_vars,
    project_dir_for,
    resolve_runbook,
    restore_extra_vars,
    runbook_names,
    same_runbook,
    search_path,
    secret_names,
    select_hosts,
)

__all__ = [
    "FIELD_OF",
    "complete_runbooks",
    "default_inventory",
    "error_document",
    "handle_errors",
    "inventory_sources",
    "load_inventory",
    "parse_extra_vars",
    "project_dir_for",
    "report",
    "request_fields",
    "resolve_runbook",
    "restore_extra_vars",
    "runbook_names",
    "same_runbook",
    "search_path",
    "secret_names",
    "select_hosts",
]

F = TypeVar("F", bound=Callable[..., Any])


def report(exc: RunbookError) -> None:
    errors = getattr(exc, "errors", None) or [exc]
    for e in errors:
        click.secho(f"error: {e}", fg="red", err=True)
    if len(errors) > 1:
        click.secho(f"{len(errors)} errors", fg="red", err=True)


def error_document(exc: RunbookError) -> str:
    """The one JSON document ``--output json`` promises, for a run that could not start."""
    errors = getattr(exc, "errors", None) or [exc]

    def one(e: Any) -> dict[str, Any]:
        loc = getattr(e, "location", None)
        return {
            "message": getattr(e, "message", str(e)),
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "hint": getattr(e, "hint", None),
        }

    return json.dumps(
        {
            "status": "error",
            "exit_code": exc.exit_code,
            "message": str(errors[0]),
            "errors": [one(e) for e in errors],
        },
        indent=2,
    )


def handle_errors(fn: F) -> F:
    """User errors print as `error: file:line:col: message` + hint, never as a traceback (and, with
    ``--output json``, also as a JSON document on stdout, so a pipeline always gets one)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RunbookError as exc:
            report(exc)
            if kwargs.get("output") == "json":
                click.echo(error_document(exc))
            elif kwargs.get("output") == "junit":  # CI reads a report even when the run could not start
                from runbook.cli.output import junit_error

                click.echo(junit_error(exc), nl=False)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt, BrokenPipeError):
            raise  # a closed pipe (`| head`) is the reader's choice: main() leaves quietly
        except Exception as exc:
            if os.environ.get("RUNBOOK_DEBUG"):
                import traceback  # only for a bug, asked for: not on every start

                traceback.print_exc()
            click.secho(f"internal error: {type(exc).__name__}: {exc}", fg="red", err=True)
            click.secho("  this is a bug in runbook; rerun with RUNBOOK_DEBUG=1 for a traceback", err=True)
            sys.exit(70)

    return wrapper  # type: ignore[return-value]


# A command's flags become fields of its runbook.session request by name: a click parameter named as
# its field passes straight through; these keep their older parameter names.
FIELD_OF = {"name": "runbook", "names": "runbooks", "inventories": "inventory", "extra": "extra_vars",
            "secret": "secrets", "approver": "approvers"}  # fmt: skip


def request_fields(params: dict[str, Any]) -> dict[str, Any]:
    """A command's click parameters as the keyword arguments of its request."""
    return {FIELD_OF.get(k, k): v for k, v in params.items()}


def __getattr__(name: str) -> Any:
    if name == "host_problems":  # runbook.session.validate's, imported when asked for
        from runbook.session.validate import host_problems

        return host_problems
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def complete_runbooks(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    """Shell completion of a runbook NAME: the file names and the declared `name:`s."""
    from click.shell_completion import CompletionItem

    names = {f.stem for d in search_path() if d.is_dir() for f in d.glob("*.y*ml")}
    names |= {n for _, n in runbook_names() if n and not any(c.isspace() for c in n)}
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


