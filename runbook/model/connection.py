"""How a host is reached, by Ansible's variable names: the one table of connection variables and
their aliases (first one set and not empty wins). The become variables are in `runbook.model.become`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VARIABLES: dict[str, tuple[str, ...]] = {
    "connection": ("ansible_connection",),
    "host": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user", "ansible_remote_user"),
    "private_key_file": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "password": ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password"),
    "python": ("ansible_python_interpreter",),
}


def pick(variables: Mapping[str, Any] | None, what: str, default: Any = None) -> Any:
    """The first of the ``what`` variables (see VARIABLES) that is set and not empty, else ``default``."""
    for name in VARIABLES[what]:
        value = (variables or {}).get(name)
        if value not in (None, ""):
            return value
    return default
