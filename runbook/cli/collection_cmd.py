"""`runbook ansible-collection`: where the shipped Ansible collection (runbook.core) is."""

from __future__ import annotations

import click


@click.group("ansible-collection")
def collection_cmd() -> None:
    """The Ansible collection runbook.core shipped with this package (action plugin runbook.core.step,
    callback runbook.core.audit)."""


@collection_cmd.command("path")
@click.option("--collection", is_flag=True, help="Print the collection's own directory (galaxy.yml) instead.")
def path_cmd(collection: bool) -> None:
    """Print the directory to put on ANSIBLE_COLLECTIONS_PATH to use the collection in place."""
    from runbook.ansible_collection import collection_dir, collections_path

    click.echo(str(collection_dir() if collection else collections_path()))
