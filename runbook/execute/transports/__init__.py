"""Transports: how commands reach a host. Chosen per host from ``ansible_connection``."""

from __future__ import annotations

from runbook.execute.transports.base import HostSpec, Transport


def open_transport(spec: HostSpec, **options: object) -> Transport:
    """Create (not yet connect) the transport for a host. Heavy imports happen here, lazily."""
    if spec.connection == "local":
        from runbook.execute.transports.local import LocalTransport

        return LocalTransport(spec, **options)  # type: ignore[arg-type]
    if spec.connection in ("ssh", "paramiko", "smart"):
        from runbook.execute.transports.ssh import SSHTransport

        return SSHTransport(spec, **options)  # type: ignore[arg-type]
    from runbook.execute.transports.plugin_host import PluginHostTransport

    return PluginHostTransport(spec, **options)  # type: ignore[arg-type]


__all__ = ["HostSpec", "Transport", "open_transport"]
