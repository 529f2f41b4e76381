"""What a run reads of an inventory: the one typed boundary between the inventory and its readers
(the engine, the magic variables, the CLI, the redactor). `runbook.model.inventory.Inventory` is one;
a test, a session or another engine may hand in any object that fits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from runbook.model.inventory_data import Group, Host


@runtime_checkable
class InventoryView(Protocol):
    """Hosts and groups by name, a host's merged variables, and Ansible host patterns."""

    @property
    def hosts(self) -> Mapping[str, Host]: ...

    @property
    def groups(self) -> Mapping[str, Group]: ...

    @property
    def sources(self) -> Sequence[str]: ...

    @property
    def vault_data(self) -> Sequence[Any]: ...  # contents of vault-encrypted vars files (all secret)

    def host_vars(self, host: str) -> dict[str, Any]:
        """The host's variables as Ansible merges them (no magic variables)."""
        ...

    def group_names(self, host: str) -> list[str]:
        """Ansible's ``group_names``: the host's groups, sorted, without 'all'."""
        ...

    def select(self, pattern: str) -> list[str]:
        """Host names matching an Ansible host pattern, in Ansible's order ([] when none)."""
        ...


__all__ = ["Group", "Host", "InventoryView"]
