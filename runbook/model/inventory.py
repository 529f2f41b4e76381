"""Ansible inventories (INI, YAML/JSON, directories, ``h1,h2,`` lists) resolved exactly like ansible-core 2.19.

`load_inventory(sources)` builds an `Inventory`; `Inventory.to_ansible_list()` equals
``ansible-inventory --list -i <sources>``. Pure Python: ansible is imported lazily, only to decrypt
vault data. The parsers live in `inventory_ini`, `inventory_yaml` and `hostpattern`; the group/host
graph they fill in `inventory_data`. Variables come from the sources, then from group_vars/ and
host_vars/ beside each source, then from those of the playbook directory (for ansible-inventory and
by default here: the current directory).
"""

from __future__ import annotations

import os
import re
from typing import Any

from runbook.errors import InventoryError, Location
from runbook.model.hostpattern import (
    IMPLICIT_LOCALHOST_VARS,
    PatternError,
    is_localhost,
    parse_host_list,
    read_limit_files,
    select_hosts,
)
from runbook.model.inventory_data import Group, Host, InventoryData
from runbook.model.inventory_ini import parse_ini_inventory
from runbook.model.inventory_script import is_script, parse_script_inventory
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
from runbook.model.lazyre import lazy_re
from runbook.model.loader import is_vault_file
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
_IGNORED_EXTS = (
    ".pyc",
    ".pyo",
    ".swp",
    ".bak",
    "~",
    ".rpm",
    ".md",
    ".txt",
    ".rst",
    ".orig",
    ".cfg",
    ".retry",
)
_IGNORED = lazy_re(
    "|".join(
        [r"^\.", "^host_vars$", "^group_vars$", "^vars_plugins$"]
        + [re.escape(e) + "$" for e in _IGNORED_EXTS]
    )
)
_YAML_EXTS = (".yml", ".yaml", ".json")  # extensions the yaml inventory plugin accepts
# ansible.constants.INTERNAL_STATIC_VARS: never printed by ansible-inventory
INTERNAL_STATIC_VARS = frozenset(
    {
        "ansible_async_path",
        "ansible_collection_name",
        "ansible_config_file",
        "ansible_dependent_role_names",
        "ansible_diff_mode",
        "ansible_facts",
        "ansible_forks",
        "ansible_inventory_sources",
        "ansible_limit",
        "ansible_play_batch",
        "ansible_play_hosts",
        "ansible_play_hosts_all",
        "ansible_play_role_names",
        "ansible_playbook_python",
        "ansible_role_name",
        "ansible_role_names",
        "ansible_run_tags",
        "ansible_skip_tags",
        "ansible_verbosity",
        "ansible_version",
        "inventory_dir",
        "inventory_file",
        "inventory_hostname",
        "inventory_hostname_short",
        "groups",
        "group_names",
        "hostvars",
        "playbook_dir",
        "play_hosts",
        "role_name",
        "role_names",
        "role_path",
        "role_uuid",
    }
)


class Inventory(InventoryData):
    """A resolved inventory. Build it with `load_inventory`."""

    def __init__(self, sources: list[str] | None = None):
        super().__init__()
        self.sources: list[str] = list(sources or [])
        self._vars_dirs: list[str] = []  # realpath of each path source's directory, in source order
        self._play_dirs: list[str] = []  # the "playbook" directory (ansible-inventory: the cwd)
        self._file_cache: dict[str, Any] = {}
        self.vault_data: list[Any] = []  # contents of vault-encrypted vars files: all secret
        # ansible.cfg / ANSIBLE_* defaults of connection variables (remote_user -> ansible_user, ...):
        # below every inventory variable, and never listed by `to_ansible_list`
        self.config_defaults: dict[str, Any] = {}
        self.default_forks: int | None = None  # ansible.cfg forks (below -f and the runbook's forks)

    # --- group_vars/ and host_vars/ (the host_group_vars vars plugin) -------------------------

    def _file_vars(self, subdir: str, name: str, *, play: bool = False) -> dict:
        """Vars of one group or host from every source's group_vars/ or host_vars/, in source order
        (``play=True``: from the playbook directory's instead)."""
        key = f"{subdir}\0{name}\0{play}"
        if key not in self._file_cache:
            dirs = self._play_dirs if play else self._vars_dirs
            self._file_cache[key] = self._read_file_vars(dirs, subdir, name)
        return self._file_cache[key]

    def _read_file_vars(self, dirs: list[str], subdir: str, name: str) -> dict:
        data: dict = {}
        for basedir in dirs:
            for path in find_vars_files(basedir, subdir, name, self.warn):
                if path not in self._file_cache:
                    self._file_cache[path] = load_data_file(path, display_path(path))
                    if is_vault_file(path):
                        self.vault_data.append(self._file_cache[path])
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

    def host_vars(self, host: str, *, decrypt: bool = False, config: bool = True) -> dict:
        """Effective variables of `host` exactly as Ansible merges them (no magic variables).

        all: vars < other groups' inventory vars (by depth, priority, name) < group_vars/all (beside
        the sources, then in the playbook dir) < group_vars/<group> (same order; every group beside the
        sources, then every group in the playbook dir) < inline host vars < host_vars/<host> (beside the
        sources, then in the playbook dir). With ``decrypt=True``
        vault values are decrypted when a password file is configured (otherwise kept as `VaultValue`).
        """
        if host in self.hosts:
            groups = self._sorted_groups(g for g in self._host_groups(host) if g != "all")
            inline = self.hosts[host].vars
        elif is_localhost(host):  # Ansible's implicit localhost
            groups, inline = [], dict(IMPLICIT_LOCALHOST_VARS)
            import sys

            inline["ansible_python_interpreter"] = sys.executable
            inline = (
                inline | self._file_vars("host_vars", host) | self._file_vars("host_vars", host, play=True)
            )
        else:
            raise KeyError(host)
        result = dict(self.config_defaults) if config else {}
        result |= self.groups["all"].vars
        for g in groups:
            result |= g.vars
        result |= self._file_vars("group_vars", "all")
        result |= self._file_vars("group_vars", "all", play=True)
        for play in (False, True):
            for g in groups:
                result |= self._file_vars("group_vars", g.name, play=play)
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
            limit_file = isinstance(pattern, str) and "@" in pattern  # --limit @file: a pattern per line
            terms = read_limit_files(pattern) if limit_file else pattern
            return select_hosts(
                terms,
                list(self.hosts),
                list(self.groups),
                self.group_hosts,
                presplit=limit_file,
                localhost=self._localhost,
            )
        except PatternError as exc:
            hint = "give @FILE an existing file, one host pattern per line" if "limit" in str(exc) else ""
            raise InventoryError(str(exc), hint=hint or "fix the host pattern") from None

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
            hv = {
                k: v for k, v in self.host_vars(host, config=False).items() if k not in INTERNAL_STATIC_VARS
            }
            if hv:
                hostvars[host] = to_jsonable(hv)
        result["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
        return result


# --- loading -----------------------------------------------------------------------------------


# how a host is reached, not a secret of it: not masked even from a vault-encrypted inventory
_CONNECTION_VARS = frozenset(
    {"ansible_host", "ansible_port", "ansible_user", "ansible_connection", "ansible_python_interpreter",
     "ansible_ssh_host", "ansible_ssh_port", "ansible_ssh_user", "ansible_become_user"}
)  # fmt: skip


def forks(given: int | None, runbook_forks: int | None, inventory: Any) -> int:
    """How many hosts run at once: -f, else the runbook's forks, else ansible.cfg's, else 10."""
    return given or runbook_forks or getattr(inventory, "default_forks", None) or 10


def _parse_file(inv: Inventory, path: str) -> None:
    if not is_vault_file(path):
        _parse_plain_file(inv, path)
        return
    # a vault-encrypted inventory: every variable value it sets is a secret (its names are not)
    before = {**_var_ids(inv.hosts, "h"), **_var_ids(inv.groups, "g")}
    _parse_plain_file(inv, path)
    new: dict[str, Any] = {}
    for kind, table in (("h", inv.hosts), ("g", inv.groups)):
        for name, item in table.items():
            for k, v in item.vars.items():
                if k not in _CONNECTION_VARS and before.get((kind, name, k)) != id(v):
                    new[f"{kind}:{name}:{k}"] = v
    if new:
        inv.vault_data.append(new)


def _var_ids(table: Any, kind: str) -> dict[tuple[str, str, str], int]:
    return {(kind, name, k): id(v) for name, item in table.items() for k, v in item.vars.items()}


def _parse_plain_file(inv: Inventory, path: str) -> None:
    shown = display_path(path)
    ext = os.path.splitext(path)[1]
    if is_script(path):  # the script plugin comes before yaml/ini, as in Ansible
        parse_script_inventory(inv, path, shown)
        return
    if ext == ".toml":
        raise InventoryError(
            "TOML inventories are not supported",
            location=Location(shown),
            hint="convert it with `ansible-inventory --list -y -i FILE`",
        )
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
            r"^\s*\[[^\]\s]+\]\s*$", text, re.M
        )  # an INI [section] line: it is an INI file
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
        raise InventoryError(
            f"Inventory source {source} is not readable",
            location=Location(source),
            hint="check its permissions",
        )
    _parse_file(inv, source)
    return True


def load_inventory(sources: list[str] | str, playbook_dir: str | None = None) -> Inventory:
    """Read inventory sources like ``ansible-inventory -i S1 -i S2``; raise InventoryError on bad input.

    `playbook_dir` (default: the current directory, as for ansible-inventory) holds group_vars/ and
    host_vars/ that win over the ones beside the inventory sources.
    """
    if isinstance(sources, str):
        sources = [sources]
    resolved = [
        s
        if "," in s
        else os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(os.path.expandvars(s))))
        for s in sources
        if s
    ]
    inv = Inventory(resolved)
    parsed = False
    for source in resolved:
        if _parse_source(inv, source):
            parsed = True
        else:  # a directory holding no inventory file: Ansible warns (and fails only when told to)
            inv.warn(f"Unable to parse {display_path(source)} as an inventory source")
    if parsed:
        inv._reconcile()
    else:
        if resolved:
            inv.warn("No inventory was parsed, only implicit localhost is available")
        inv._compute_depths()
    for source in resolved:
        if "," in source and not os.path.exists(source):
            continue
        directory = source if os.path.isdir(source) else os.path.dirname(source)
        inv._vars_dirs.append(os.path.realpath(directory))
    inv._play_dirs.append(os.path.realpath(playbook_dir or os.getcwd()))
    for host in inv.hosts.values():
        host.vars |= inv._file_vars("host_vars", host.name) | inv._file_vars(
            "host_vars", host.name, play=True
        )
    # read (and so validate) the group_vars/ files Ansible reads for `--list`: those of groups with hosts
    for group in ["all", *sorted({g for h in inv.hosts for g in inv._host_groups(h)})]:
        for play in (False, True):
            inv._file_vars("group_vars", group, play=play)
    return inv
