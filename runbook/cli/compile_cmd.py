"""`runbook compile NAME`: print the runbook as an ordinary Ansible playbook."""

from __future__ import annotations

from pathlib import Path

import click

from runbook.cli.common import complete_runbooks, handle_errors, resolve_runbook


@click.command("compile")
@click.argument("name", shell_complete=complete_runbooks)
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Write the playbook to this file.")
@handle_errors
def compile_cmd(name: str, out: str | None) -> None:
    """Print runbook NAME as an Ansible playbook run by the runbook.core collection: preflight as a
    play with any_errors_fatal, the steps in a block whose rescue rolls back from the snapshots,
    always:, serial and max_fail_percentage. Run it with
    ANSIBLE_COLLECTIONS_PATH="$(runbook ansible-collection path)" ansible-playbook -i INV FILE."""
    from runbook.compile import compile_runbook, to_yaml
    from runbook.session.run import load_checked

    path = resolve_runbook(name)
    rb = load_checked(path)  # as exec: a runbook that does not validate is not compiled
    text = to_yaml(compile_runbook(rb), header=f"# compiled by `runbook compile` from {path}")
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
