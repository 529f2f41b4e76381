"""How a host is reached, in Ansible's terms.

- The one table of connection variables and their aliases (`VARIABLES`, `pick`: first one set and not
  empty wins). The become variables are in `runbook.model.become`.
- Ansible connection plugin names and the transports runbook has for them. ``ansible_connection``
  may name a plugin by its short name or FQCN (``ssh``, ``ansible.builtin.ssh``, ``paramiko_ssh``,
  ``local``, ...). Those runbook reaches natively map to its transports (`native_connection`); any
  other plugin (``community.docker.docker``, ``winrm``, ``kubectl``, ...) has no native transport:
  only steps that run through Ansible itself (ansible-runner) can target such a host
  (`connection_is_native` is the one predicate for that).
"""

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

# plugin name (short or FQCN) -> runbook transport
NATIVE: dict[str, str] = {
    "ssh": "ssh",
    "smart": "ssh",
    "ansible.builtin.ssh": "ssh",
    "paramiko": "paramiko",
    "paramiko_ssh": "paramiko",
    "ansible.builtin.paramiko_ssh": "paramiko",
    "ansible.builtin.paramiko": "paramiko",
    "local": "local",
    "ansible.builtin.local": "local",
}


def native_connection(name: Any) -> str | None:
    """runbook's transport for an ``ansible_connection`` value (None: no native transport)."""
    if name is None or name == "":
        return "ssh"  # Ansible's default transport
    return NATIVE.get(str(name).strip())


def connection_is_native(name: Any) -> bool:
    """Can runbook's own transports reach a host with this ``ansible_connection``?"""
    return native_connection(name) is not None


def not_native_message(host: str, connection: str) -> str:
    return (
        f"host {host}: ansible_connection={connection!r} is a connection plugin runbook has no native "
        "transport for; only Ansible-module steps (and ansible.playbook) can run on it"
    )


NOT_NATIVE_HINT = (
    "run such steps as Ansible modules by their FQCN (e.g. ansible.builtin.apt, ansible.posix.sysctl): "
    "ansible-runner reaches the host through its connection plugin; or keep native steps off the "
    "host (when:/--limit), or reach it over ssh/local"
)
