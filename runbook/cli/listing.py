"""--list-hosts and --list-steps of exec/plan (as ansible-playbook's): what a run would touch and do,
without running anything."""

from __future__ import annotations

from typing import Any

import click


def list_hosts(rb: Any, hosts: list[str]) -> None:
    """The targeted hosts (after --limit), and how `serial:` batches them."""
    from runbook.plan.planner import batches

    click.echo(f"  hosts ({len(hosts)}):")
    for h in hosts:
        click.echo(f"    {h}")
    if rb.serial:
        parts = batches(hosts, rb.serial)
        click.echo(f"  batches (serial: {list(rb.serial)}): {len(parts)}")
        for n, b in enumerate(parts, 1):
            click.echo(f"    {n}. " + ", ".join(b))


def list_steps(rb: Any) -> None:
    """Every phase's steps in order, with module and tags (fallback steps indented under theirs)."""
    phases: list[tuple[str, Any]] = [("preflight", rb.preflight), ("steps", rb.steps)]
    if isinstance(rb.rollback, tuple):
        phases.append(("rollback", rb.rollback))
    phases.append(("always", rb.always))
    for phase, steps in phases:
        if not steps:
            continue
        click.echo(f"  {phase}:")
        for s in steps:
            _step(s, f"{s.index + 1}.", 4)
    if not isinstance(rb.rollback, tuple):
        click.echo(f"  rollback: {rb.rollback}")


def _step(s: Any, number: str, indent: int) -> None:
    tags = f"  TAGS: [{', '.join(s.tags)}]" if s.tags else ""
    click.echo(" " * indent + f"{number} {s.label}  ({s.module}){tags}")
    for fb in s.fallback:
        _step(fb, f"fallback {fb.index + 1}.", indent + 4)
