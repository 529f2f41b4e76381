"""The Ansible collection ``runbook.core`` shipped inside the package.

``collections_path()`` is the directory to put on ``ANSIBLE_COLLECTIONS_PATH`` to use the collection
in place (``runbook ansible-collection path`` prints it); ``collection_dir()`` is the collection
itself (what ``ansible-galaxy collection build`` builds). The plugins import ``runbook``: the
controller (or execution environment) running Ansible needs the package installed.
"""

from __future__ import annotations

from pathlib import Path

NAMESPACE = "runbook"
NAME = "core"


def collections_path() -> Path:
    """The directory that holds ``ansible_collections/`` (ANSIBLE_COLLECTIONS_PATH points here)."""
    return Path(__file__).resolve().parent


def collection_dir() -> Path:
    """The collection's root (galaxy.yml, plugins/)."""
    return collections_path() / "ansible_collections" / NAMESPACE / NAME
