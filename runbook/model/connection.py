"""Ansible connection plugin names and the transports runbook has for them.

``ansible_connection`` may name a plugin by its short name or FQCN (``ssh``, ``ansible.builtin.ssh``,
``paramiko_ssh``, ``local``, ...). Those runbook reaches natively map to its transports
(`native_connection`); any other plugin (``community.docker.docker``, ``winrm``, ``kubectl``, ...)
has no native transport: only steps that run through Ansible itself (ansible-runner) can target
such a host (`connection_is_native` is the one predicate for that).
"""

from __future__ import annotations

from typing import Any

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
