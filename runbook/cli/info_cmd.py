"""validate / list / show / schema / inventory: everything that reads and reports, changing nothing."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from runbook.cli.common import (
    complete_runbooks,
    handle_errors,
    load_inventory,
    request_fields,
    resolve_runbook,
    search_path,
)
from runbook.cli.vaultopts import ansible_options
from runbook.errors import RunbookError, ValidationError


@click.command("validate")
@click.argument("names", nargs=-1, shell_complete=complete_runbooks)
@click.option(
    "-i",
    "--inventory",
    "inventories",
    multiple=True,
    help="Check undefined variables against this inventory.",
)
@click.option("-l", "--limit", help="Only check these hosts.")
@click.option("-e", "--extra-vars", "extra", multiple=True)
@click.option("--secret", "secret", multiple=True, metavar="NAME", help="Treat variable NAME as a secret.")
@handle_errors
@ansible_options()
def validate_cmd(**kw: Any) -> None:
    """Statically check runbooks (all of them when no NAME is given): schema, module arguments,
    template syntax, template files, and undefined variables for every targeted host."""
    from runbook.session import ValidateRequest
    from runbook.session.validate import checks

    request = ValidateRequest(**request_fields(kw))
    total = 0
    for check in checks(request):  # each runbook reported as it is checked
        for w in check.lint_warnings:
            click.secho(f"warning: {w}", fg="yellow", err=True)
        for p in check.problems:
            click.secho(f"error: {p}", fg="red", err=True)
        for w in check.undo_warnings:
            click.secho(f"warning: {w}", fg="yellow", err=True)
        total += len(check.problems)
        if check.ok:
            click.secho(f"ok: {check.path} ({check.steps} steps)", fg="green")
    if total:
        click.secho(f"{total} problem(s) found", fg="red", err=True)
        sys.exit(2)


@click.command("list")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def list_cmd(as_json: bool) -> None:
    """List runbooks found in ./playbooks and RUNBOOK_PATH."""
    from runbook.kinds.base import KnownModules
    from runbook.model.runbook import load_runbook

    rows = []
    for d in search_path():
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.y*ml")):
            try:
                rb = load_runbook(p, KnownModules())
                rows.append(
                    {
                        "name": rb.name or p.stem,
                        "file": p.stem,
                        "description": rb.description.strip().splitlines()[0]
                        if rb.description.strip()
                        else "",
                        "path": str(p),
                        "steps": len(rb.steps),
                        "preflight": len(rb.preflight),
                    }
                )
            except ValidationError as exc:
                rows.append(
                    {
                        "name": p.stem,
                        "file": p.stem,
                        "description": f"INVALID: {exc.message}",
                        "path": str(p),
                        "steps": 0,
                        "preflight": 0,
                    }
                )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from runbook.cli.console import make_console

    console = make_console()
    t = Table(show_edge=False, header_style="bold")
    files = any(r["file"] != r["name"] for r in rows)  # a file column only when some names differ
    cols = ("name", *(("file",) if files else ()), "preflight", "steps")
    widths = [max([len(c), *(len(str(r[c])) for r in rows)]) for c in cols]
    room = max(12, console.width - sum(widths) - 3 * len(cols) - 1)  # names and counts are never cut
    for c, w in zip(cols, widths, strict=True):
        t.add_column(c, no_wrap=True, min_width=w)
    t.add_column("description", no_wrap=True)
    for r in rows:
        text = r["description"] if len(r["description"]) <= room else r["description"][: room - 1] + "…"
        t.add_row(*(escape(str(r[c])) for c in cols), escape(text))
    console.print(t)


@click.command("show")
@click.argument("name", shell_complete=complete_runbooks)
@handle_errors
def show_cmd(name: str) -> None:
    """Show what runbook NAME does: hosts, batches, and each phase's steps."""
    from rich.markup import escape

    from runbook.cli.console import make_console
    from runbook.kinds.base import KnownModules
    from runbook.model.runbook import load_runbook
    from runbook.plan import validate as v

    rb = load_runbook(resolve_runbook(name), KnownModules())
    problems = v.check_static(rb)  # a runbook that cannot run is not shown as if it could
    if problems:
        exc = ValidationError(
            problems[0].error.message, location=problems[0].error.location, hint=problems[0].error.hint
        )
        exc.errors = [p.error for p in problems]  # type: ignore[attr-defined]
        raise exc
    c = make_console()
    c.print(f"[bold]{escape(rb.name)}[/]  ({escape(str(rb.path))})")
    if rb.description:
        c.print(escape(rb.description.strip()))
    c.print(
        f"hosts: {escape(rb.hosts)}"
        + (f"  serial: {list(rb.serial)}" if rb.serial else "")
        + f"  max_fail_percentage: {rb.max_fail_percentage:g}"
        + (f"  lock: {rb.lock}" if rb.lock else "")
    )
    if rb.window:
        c.print(f"window: {rb.window.start}-{rb.window.end} {rb.window.tz}")
    phases: list[tuple[str, Any]] = [("preflight", rb.preflight), ("steps", rb.steps)]
    phases.append(("rollback", rb.rollback if isinstance(rb.rollback, tuple) else ()))
    phases.append(("always", rb.always))
    phases.append(("handlers", rb.handlers))
    for phase, steps in phases:
        if phase == "rollback" and not steps:
            c.print(f"\n[bold blue]ROLLBACK[/]: {rb.rollback} (scope: {rb.rollback_scope})")
            continue
        if not steps:
            continue
        c.print(f"\n[bold blue]{phase.upper()}[/]")
        for s in steps:
            _show_step(c, s, f"{s.index + 1:>2}.", 2, rb.rollback == "auto")


def _undo_note(s: Any, auto: bool) -> list[str]:
    """What `show` says about a step a rollback cannot undo (or that declares it needs none)."""
    from runbook.kinds import undo

    why = undo.cannot_undo(s) if auto else None
    if why:
        return [f"CANNOT BE UNDONE ({why})"]
    if s.undo_none is not None:
        return [f"undo: none ({s.undo_none})" if s.undo_none else "undo: none"]
    return []


def _show_step(c: Any, s: Any, number: str, indent: int, auto: bool = True) -> None:
    """One step of `runbook show`, its fallback steps indented under it."""
    from rich.markup import escape

    extras = []
    if s.when:
        extras.append(f"when {list(s.when)}")
    if s.retries is not None or s.until:
        extras.append(f"retries {s.retries}")
    if s.tags:
        extras.append(f"tags {','.join(s.tags)}")
    if s.undo:
        extras.append(f"undo: {s.undo.module}")
    extras += _undo_note(s, auto)
    if s.fallback:
        extras.append(f"fallback: {len(s.fallback)} step(s)")
    if s.notify:
        extras.append(f"notify {', '.join(s.notify)}")
    where = f"line {s.location.line}" if s.location.line else ""
    c.print(
        " " * indent
        + f"{number} [bold]{escape(s.label)}[/] [dim]{s.module}{'  ' + '; '.join(extras) if extras else ''}  ({where})[/]"
    )
    for fb in s.fallback:
        _show_step(c, fb, f"fallback {fb.index + 1}.", indent + 6, auto)
    for part in ("block", "rescue", "always"):  # a block's steps, indented under it
        for sub in getattr(s, part, ()) or ():
            _show_step(c, sub, f"{part} {sub.index + 1}.", indent + 6, auto)


@click.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of the runbook format (for editors: yaml-language-server)."""
    from runbook.kinds.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@click.command("inventory")
@click.option("-i", "--inventory", "inventories", multiple=True, help="Inventory (default: ANSIBLE_INVENTORY, ansible.cfg, inventories/local).")
@click.option("--list", "as_list", is_flag=True, default=True, help="(default) print everything as JSON")
@click.option("--host", help="Print one host's variables.")
@click.option("--graph", is_flag=True, help="Print the group tree.")
@click.option("--vars", "with_vars", is_flag=True, help="With --graph: show variables.")
@handle_errors
@ansible_options()
def inventory_cmd(
    inventories: tuple[str, ...], as_list: bool, host: str | None, graph: bool, with_vars: bool
) -> None:
    """Show an inventory exactly as `ansible-inventory --list -i X` does."""
    inv = load_inventory(inventories)
    if host:
        if host not in inv.hosts:
            raise RunbookError(f"host '{host}' is not in the inventory")
        from runbook.model.inventory import INTERNAL_STATIC_VARS
        from runbook.model.inventory_yaml import to_jsonable

        hv = {k: v for k, v in inv.host_vars(host, config=False).items() if k not in INTERNAL_STATIC_VARS}
        click.echo(
            json.dumps(to_jsonable(hv, tag_unsafe=False), indent=4, sort_keys=True, ensure_ascii=False)
        )
        return
    if graph:
        _graph(inv, "all", 0, with_vars)
        return
    click.echo(json.dumps(_jsonable(inv.to_ansible_list()), indent=4, sort_keys=True, ensure_ascii=False))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if type(value).__name__ == "VaultValue":
        return {"__ansible_vault": value.ciphertext}
    return value


def _graph(inv: Any, group: str, depth: int, with_vars: bool) -> None:
    g = inv.groups[group]
    click.echo("  " * depth + f"@{group}:")
    for child in sorted(g.children):
        _graph(inv, child, depth + 1, with_vars)
    for h in g.hosts:
        click.echo("  " * (depth + 1) + f"|--{h}")
        if with_vars:
            for k, val in sorted(inv.hosts[h].vars.items()):
                click.echo("  " * (depth + 2) + f"|--{{{k} = {val}}}")
