"""The inventory graph -- ansible-core's InventoryData: groups, hosts, parent/child links, reconcile.

The INI and YAML readers call ``add_group``, ``add_host``, ``add_child`` and ``set_variable``;
`InventoryData._reconcile` then applies Ansible's rules (every group under 'all', hosts without a group
in 'ungrouped', hosts with a group taken out of it). `runbook.model.inventory.Inventory` adds the
variable precedence, host patterns and the ``--list`` output on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runbook.errors import InventoryError
from runbook.model.hostpattern import is_localhost
from runbook.model.lazyre import lazy_re

_INVALID_GROUP_CHARS = lazy_re(r"^[\d\W]|[^\w]")


@dataclass
class Host:
    name: str
    vars: dict = field(default_factory=dict)  # inline vars from the sources, then host_vars/ files


@dataclass
class Group:
    name: str
    hosts: list[str] = field(default_factory=list)  # direct members, insertion order
    children: list[str] = field(default_factory=list)
    vars: dict = field(default_factory=dict)  # from the inventory sources (group_vars/ files kept apart)
    priority: int = 1  # ansible_group_priority
    parents: list[str] = field(default_factory=list)
    depth: int = 0  # longest path from 'all', as Ansible computes it


class InventoryData:
    """Groups and hosts as the inventory parsers build them (Ansible's `InventoryData`)."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self.groups: dict[str, Group] = {}
        self.warnings: list[str] = []
        self._localhost: str | None = None  # first localhost-like host defined
        self._closure: dict[str, frozenset[str]] = {}
        self._dropped: dict[str, frozenset[str]] = {}  # groups reconcile took out of a host's groups
        for name in ("all", "ungrouped"):
            self.add_group(name)
        self.add_child("all", "ungrouped")

    # --- building (the InventoryData API the parsers call) ------------------------------------

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def add_group(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise InventoryError(f"Invalid group name supplied: {name!r}", hint="use a non-empty string")
        if name not in self.groups:
            self.groups[name] = Group(name)
            if _INVALID_GROUP_CHARS.search(name):
                self.warn(
                    "Invalid characters were found in group names but not replaced, use -vvvv to see details"
                )
        return name

    def add_host(self, name: str, group: str | None = None, port: int | None = None) -> str:
        if name not in self.hosts:
            self.hosts[name] = Host(name)
            if port:
                self.hosts[name].vars["ansible_port"] = int(port)
            if is_localhost(name):
                if self._localhost is None:
                    self._localhost = name
                else:
                    self.warn(
                        f"A duplicate localhost-like entry was found ({name}). "
                        f"First found localhost was {self._localhost}"
                    )
        if group:
            members = self.groups[group].hosts
            if name not in members:
                members.append(name)
        return name

    def add_child(self, parent: str, child: str) -> None:
        if parent not in self.groups:
            raise InventoryError(f"{parent} is not a known group", hint="define the group first")
        if child in self.groups:
            if child == parent:
                raise InventoryError(
                    f"can't add group {child!r} to itself", hint="remove the group from its own children"
                )
            if child == "all":  # Ansible fails later, when it puts every parentless group under 'all'
                raise InventoryError(
                    f"Adding group 'all' as child to '{parent}' creates a recursive dependency loop.",
                    hint=f"'all' is the root of every inventory: remove it from the children of '{parent}'",
                )
            pg, cg = self.groups[parent], self.groups[child]
            if child in pg.children:
                return
            if child in self._ancestors(parent):
                raise InventoryError(
                    f"Adding group '{child}' as child to '{parent}' creates a recursive dependency loop.",
                    hint="a group cannot be its own ancestor; break the cycle of :children",
                )
            pg.children.append(child)
            if parent not in cg.parents:
                cg.parents.append(parent)
        elif child in self.hosts:
            members = self.groups[parent].hosts
            if child not in members:
                members.append(child)
        else:
            raise InventoryError(f"{child} is not a known host nor group", hint="define it first")

    def set_variable(self, entity: str, key: Any, value: Any) -> None:
        if entity in self.groups:  # groups win over hosts of the same name, as in Ansible
            group = self.groups[entity]
            if key == "ansible_group_priority":
                try:
                    group.priority = int(value)
                except Exception:
                    raise InventoryError(
                        f"ansible_group_priority for group {entity!r} must be an integer, got {value!r}",
                        hint="set ansible_group_priority to a whole number",
                    ) from None
            else:
                group.vars[key] = value
        elif entity in self.hosts:
            self.hosts[entity].vars[key] = value
        else:
            raise InventoryError(f"Could not identify group or host named {entity}", hint="define it first")

    def _ancestors(self, group: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[group].parents)
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(self.groups[g].parents)
        return seen

    def _reconcile(self) -> None:
        for name, group in list(self.groups.items()):
            if name != "all" and not group.parents:
                self.add_child("all", name)
        self._compute_depths()
        self._closure = {}
        ungrouped = self.groups["ungrouped"]
        for host in self.hosts:
            groups = self._host_groups(host)
            if "ungrouped" in groups:
                if groups - {"all", "ungrouped"} and host in ungrouped.hosts:
                    ungrouped.hosts.remove(host)
                    kept = set(groups)
                    self._remove_group(kept, "ungrouped")
                    # The host leaves 'ungrouped' (and its exclusive ancestors) even when it is still in
                    # a child group of 'ungrouped': those groups' vars no longer apply to it (Ansible).
                    self._dropped[host] = frozenset(groups - kept)
                    self._closure[host] = frozenset(kept)
            elif not groups or groups == {"all"}:
                ungrouped.hosts.append(host)
                self._closure.pop(host, None)
        for conflict in sorted(set(self.groups) & set(self.hosts)):
            self.warn(f"Found both group and host with same name: {conflict}")

    def _remove_group(self, groups: set[str], group: str) -> None:
        """Ansible's `Host.remove_group`: drop `group`, then each ancestor (but 'all') that no group
        left in `groups` descends from."""
        if group not in groups:
            return
        groups.discard(group)
        for old in sorted(self._ancestors(group)):
            if old != "all" and not any(old in self._ancestors(g) for g in groups):
                self._remove_group(groups, old)

    def _compute_depths(self) -> None:
        depth: dict[str, int] = {}

        def visit(name: str) -> int:
            if name not in depth:
                parents = self.groups[name].parents
                depth[name] = max((visit(p) + 1 for p in parents), default=0)
            return depth[name]

        for name, group in self.groups.items():
            group.depth = visit(name)

    def _host_groups(self, host: str) -> frozenset[str]:
        """Every group the host is in, directly or through children (Ansible's host.get_groups())."""
        if host not in self._closure:
            direct = [g for g, group in self.groups.items() if host in group.hosts]
            out: set[str] = set(direct)
            for g in direct:
                out |= self._ancestors(g)
            self._closure[host] = frozenset(out - self._dropped.get(host, frozenset()))
        return self._closure[host]
