"""Ansible inventories (INI, YAML/JSON, directories, ``h1,h2,`` lists) resolved exactly like ansible-core 2.19.

`load_inventory(sources)` builds an `Inventory`; `Inventory.to_ansible_list()` equals
``ansible-inventory --list -i <sources>``. Pure Python: ansible is imported lazily, only to decrypt
vault data. The parsers live in `inventory_ini`, `inventory_yaml` and `hostpattern`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from runbook.errors import InventoryError, Location
from runbook.model.hostpattern import LOCALHOST_NAMES, PatternError, parse_host_list, select_hosts
from runbook.model.inventory_ini import parse_ini_inventory
from runbook.model.inventory_yaml import (
    Unsafe,
    display_path,
    find_vars_files,
    load_data_file,
    parse_data,
    parse_yaml_inventory,
    read_text,
    reveal_vault,
    to_jsonable,
    vault_password,
)
from runbook.model.vault import VaultValue

__all__ = [
    "Group",
    "Host",
    "Inventory",
    "InventoryError",
    "Unsafe",
    "VaultValue",
    "load_inventory",
    "reveal_vault",
]

# ansible.constants.INVENTORY_IGNORE_EXTS (REJECT_EXTS + .orig/.cfg/.retry) and the always-ignored names
_IGNORED_EXTS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
_IGNORED = re.compile("|".join([r"^\.", "^host_vars$", "^group_vars$", "^vars_plugins$"]
                               + [re.escape(e) + "$" for e in _IGNORED_EXTS]))
_YAML_EXTS = (".yml", ".yaml", ".json")  # extensions the yaml inventory plugin accepts
_INVALID_GROUP_CHARS = re.compile(r"^[\d\W]|[^\w]")
# ansible.constants.INTERNAL_STATIC_VARS: never printed by ansible-inventory
INTERNAL_STATIC_VARS = frozenset({
    "ansible_async_path", "ansible_collection_name", "ansible_config_file", "ansible_dependent_role_names",
    "ansible_diff_mode", "ansible_facts", "ansible_forks", "ansible_inventory_sources", "ansible_limit",
    "ansible_play_batch", "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_role_names",
    "ansible_playbook_python", "ansible_role_name", "ansible_role_names", "ansible_run_tags",
    "ansible_skip_tags", "ansible_verbosity", "ansible_version", "inventory_dir", "inventory_file",
    "inventory_hostname", "inventory_hostname_short", "groups", "group_names", "hostvars",
    "playbook_dir", "play_hosts", "role_name", "role_names", "role_path", "role_uuid",
})


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


class Inventory:
    """A resolved inventory. Build it with `load_inventory`."""

    def __init__(self, sources: list[str] | None = None):
        self.hosts: dict[str, Host] = {}
        self.groups: dict[str, Group] = {}
        self.sources: list[str] = list(sources or [])
        self.warnings: list[str] = []
        self._localhost: str | None = None  # first localhost-like host defined
        self._vars_dirs: list[str] = []  # realpath of each path source's directory, in source order
        self._file_cache: dict[str, Any] = {}
        self._closure: dict[str, frozenset[str]] = {}
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
                self.warn("Invalid characters were found in group names but not replaced, "
                          "use -vvvv to see details")
        return name

    def add_host(self, name: str, group: str | None = None, port: int | None = None) -> str:
        if name not in self.hosts:
            self.hosts[name] = Host(name)
            if port:
                self.hosts[name].vars["ansible_port"] = int(port)
            if name in LOCALHOST_NAMES:
                if self._localhost is None:
                    self._localhost = name
                else:
                    self.warn(f"A duplicate localhost-like entry was found ({name}). "
                              f"First found localhost was {self._localhost}")
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
                raise InventoryError(f"can't add group {child!r} to itself",
                                     hint="remove the group from its own children")
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
                    self._closure.pop(host, None)
            elif not groups or groups == {"all"}:
                ungrouped.hosts.append(host)
                self._closure.pop(host, None)
        for conflict in sorted(set(self.groups) & set(self.hosts)):
            self.warn(f"Found both group and host with same name: {conflict}")

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
            self._closure[host] = frozenset(out)
        return self._closure[host]

    # --- group_vars/ and host_vars/ (the host_group_vars vars plugin) -------------------------

    def _file_vars(self, subdir: str, name: str) -> dict:
        """Vars of one group or host from every source's group_vars/ or host_vars/, in source order."""
        key = f"{subdir}\0{name}"
        if key not in self._file_cache:
            self._file_cache[key] = self._read_file_vars(subdir, name)
        return self._file_cache[key]

    def _read_file_vars(self, subdir: str, name: str) -> dict:
        data: dict = {}
        for basedir in self._vars_dirs:
            for path in find_vars_files(basedir, subdir, name, self.warn):
                if path not in self._file_cache:
                    self._file_cache[path] = load_data_file(path, display_path(path))
                new = self._file_cache[path]
                if not new:
                    continue
                if not isinstance(new, dict):
                    raise InventoryError(
                        f"failed to combine variables, expected dicts but got a 'dict' and a "
                        f"'{type(new).__name__}'",
                        location=Location(display_path(path), 1),
                        hint="a group_vars/host_vars file must hold a mapping of variable names to values",
                    )
                data = data | new
        return data

    # --- queries ------------------------------------------------------------------------------

    def _sorted_groups(self, names) -> list[Group]:
        return sorted((self.groups[n] for n in names), key=lambda g: (g.depth, g.priority, g.name))

    def host_vars(self, host: str, *, decrypt: bool = False) -> dict:
        """Effective variables of `host` exactly as Ansible merges them (no magic variables).

        all: vars < other groups' inventory vars (by depth, priority, name) < group_vars/all <
        group_vars/<group> (same order) < inline host vars < host_vars/<host>. With ``decrypt=True``
        vault values are decrypted when a password file is configured (otherwise kept as `VaultValue`).
        """
        if host in self.hosts:
            groups = self._sorted_groups(g for g in self._host_groups(host) if g != "all")
            inline = self.hosts[host].vars
        elif host in LOCALHOST_NAMES:  # Ansible's implicit localhost
            groups, inline = [], {"ansible_connection": "local"}
            import sys

            inline["ansible_python_interpreter"] = sys.executable
            inline = inline | self._file_vars("host_vars", host)
        else:
            raise KeyError(host)
        result = dict(self.groups["all"].vars)
        for g in groups:
            result |= g.vars
        result |= self._file_vars("group_vars", "all")
        for g in groups:
            result |= self._file_vars("group_vars", g.name)
        result |= inline
        if decrypt and vault_password() is not None:
            result = reveal_vault(result)
        return result

    def group_vars(self, group: str) -> dict:
        """A group's own vars: inventory vars, then its group_vars/ files (like `--export`)."""
        g = self.groups[group]
        return g.vars | self._file_vars("group_vars", group)

    def group_names(self, host: str) -> list[str]:
        """Ansible's ``group_names`` magic variable: sorted, without 'all'."""
        return sorted(g for g in self._host_groups(host) if g != "all")

    def group_hosts(self, group: str) -> list[str]:
        """Hosts of a group and its descendants, in Ansible's order (`Group.get_hosts()`)."""
        ordered = [group, *self.groups[group].children]
        seen = set(ordered)
        level = list(dict.fromkeys(self.groups[group].children))
        while level:
            nxt: list[str] = []
            for g in level:
                for child in self.groups[g].children:
                    if child not in seen:
                        ordered.append(child)
                        nxt.append(child)
                        seen.add(child)
            level = nxt
        out: dict[str, None] = {}
        for g in ordered:
            for h in self.groups[g].hosts:
                out.setdefault(h)
        return list(out)

    def select(self, pattern: str) -> list[str]:
        """Host names matching an Ansible host pattern, in Ansible's order ([] when nothing matches)."""

        try:
            found = select_hosts(pattern, list(self.hosts), list(self.groups), self.group_hosts)
        except PatternError as exc:
            raise InventoryError(str(exc), hint="fix the host pattern") from None
        if not found and pattern in LOCALHOST_NAMES:
            found = [self._localhost or pattern]
        return found

    def to_ansible_list(self) -> dict:
        """The structure `ansible-inventory --list` prints (without --export)."""
        seen: set[str] = set()

        def fmt(name: str) -> dict:
            group = self.groups[name]
            entry: dict[str, Any] = {}
            if name != "all" and group.hosts:
                entry["hosts"] = list(group.hosts)
            out: dict[str, Any] = {}
            for child in group.children:
                if child not in seen:
                    out.update(fmt(child))
                    seen.add(child)
            if group.children:
                entry["children"] = list(group.children)
            if entry:
                out[name] = entry
            return out

        result = fmt("all")
        hostvars = {}
        for host in self.group_hosts("all"):
            hv = {k: v for k, v in self.host_vars(host).items() if k not in INTERNAL_STATIC_VARS}
            if hv:
                hostvars[host] = to_jsonable(hv)
        result["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
        return result


# --- loading -----------------------------------------------------------------------------------


def _parse_file(inv: Inventory, path: str) -> None:
    shown = display_path(path)
    ext = os.path.splitext(path)[1]
    if os.access(path, os.X_OK):
        with open(path, "rb") as fh:
            if fh.read(2) == b"#!":
                raise InventoryError(
                    "Dynamic inventory scripts are not supported",
                    location=Location(shown),
                    hint="run `ansible-inventory --list -y -i SCRIPT > inventory.yml` and use that file "
                         "(or chmod -x the file if it is a static inventory)",
                )
    if ext == ".toml":
        raise InventoryError("TOML inventories are not supported", location=Location(shown),
                             hint="convert it with `ansible-inventory --list -y -i FILE`")
    text = read_text(path, shown)
    yaml_exc: InventoryError | None = None
    if not ext or ext in _YAML_EXTS:
        try:
            parse_yaml_inventory(inv, parse_data(text, shown), text, shown)
            return
        except InventoryError as exc:
            yaml_exc = exc
            if "Plugin configuration" in exc.message and ext in (".yml", ".yaml"):
                raise
    try:
        parse_ini_inventory(inv, text, path, shown)
    except InventoryError as ini_exc:
        looks_yaml = ("ending in ':'" in ini_exc.message or "'---'" in ini_exc.message) and not re.search(
            r"^\s*\[[^\]\s]+\]\s*$", text, re.M)  # an INI [section] line: it is an INI file
        if yaml_exc is not None and (ext or looks_yaml):
            raise yaml_exc from None
        raise


def _parse_source(inv: Inventory, source: str) -> bool:
    if os.path.isdir(source):
        parsed = False
        for name in sorted(os.listdir(source)):
            if not _IGNORED.search(name):
                parsed = _parse_source(inv, os.path.join(source, name)) or parsed
        return parsed
    if not os.path.exists(source) and "," in source:  # the host_list plugin
        for host, port in parse_host_list(source):
            if host not in inv.hosts:
                inv.add_host(host, group="ungrouped", port=port)
        return True
    if not os.path.exists(source):
        raise InventoryError(
            f"Inventory source {source} does not exist",
            location=Location(display_path(source)),
            hint="pass an inventory file, a directory, or a comma-separated host list such as 'h1,h2,'",
        )
    if not os.access(source, os.R_OK):
        raise InventoryError(f"Inventory source {source} is not readable", location=Location(source),
                             hint="check its permissions")
    _parse_file(inv, source)
    return True


def load_inventory(sources: list[str] | str) -> Inventory:
    """Read inventory sources like ``ansible-inventory -i S1 -i S2``; raise InventoryError on bad input."""
    if isinstance(sources, str):
        sources = [sources]
    resolved = [s if "," in s else os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(
        os.path.expandvars(s)))) for s in sources if s]
    inv = Inventory(resolved)
    parsed = False
    for source in resolved:
        parsed = _parse_source(inv, source) or parsed
    if parsed:
        inv._reconcile()
    else:
        inv._compute_depths()
    for source in resolved:
        if "," in source and not os.path.exists(source):
            continue
        directory = source if os.path.isdir(source) else os.path.dirname(source)
        inv._vars_dirs.append(os.path.realpath(directory))
    for host in inv.hosts.values():
        host.vars |= inv._file_vars("host_vars", host.name)
    # read (and so validate) the group_vars/ files Ansible reads for `--list`: those of groups with hosts
    for group in ["all", *sorted({g for h in inv.hosts for g in inv._host_groups(h)})]:
        inv._file_vars("group_vars", group)
    return inv
