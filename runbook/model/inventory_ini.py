"""Ansible INI inventory files, read the way ansible-core 2.19's `ini` inventory plugin reads them.

Parsing feeds an `InventoryData`-like object (`runbook.model.inventory._Builder`): ``add_group``,
``add_host``, ``add_child``, ``set_variable`` and the ``groups``/``hosts`` mappings. Every failure
is raised as `InventoryError` naming the file and line and saying what to do.
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

from runbook.errors import InventoryError, Location
from runbook.model import shellwords
from runbook.model.hostpattern import RangeError, expand_hostpattern
from runbook.model.inventory_yaml import Unsafe
from runbook.model.lazyre import lazy_re

_COMMENT_MARKERS = (";", "#")
_SECTION = lazy_re(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:\#.*)?$")
_GROUPNAME = lazy_re(r"^([^:\]\s]+)\s*(?:\#.*)?$")


def parse_value(text: str) -> Any:
    """An INI value as Ansible sees it: a Python literal when `ast.literal_eval` accepts it, else the text.

    Tuples and sets become lists, ``...`` and complex numbers stay strings, bytes become `Unsafe` text.
    Errors other than ValueError/SyntaxError (e.g. ``{[1]: 2}``) propagate, as in Ansible.
    """
    value: Any = text
    if not _may_be_literal(text):
        return text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    return _coerce(value)


_LITERAL_START = lazy_re(r"\s*(?:[\[{(\"'0-9+\-.~]|(?:True|False|None)\b|set\s*\(|[rRbBuU]{1,2}['\"])")


def _may_be_literal(text: str) -> bool:
    """Can ``ast.literal_eval`` accept the text at all? (A word such as ``web`` or ``a b c`` cannot:
    it is text without asking the parser, which runs out of memory on a megabyte of words.)"""
    return _LITERAL_START.match(text) is not None


def _coerce(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set)):
        return [_coerce(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):  # Ansible decodes bytes literals but does not trust them as templates
        return Unsafe(value.decode("utf-8", "surrogateescape"))
    return value


class _IniParser:
    def __init__(self, inventory, path: str, display_path: str):
        self.inv = inventory
        self.path = path
        self.display_path = display_path
        self.lineno = 0

    def error(self, message: str, hint: str, line: int | None = None) -> InventoryError:
        loc = Location(self.display_path, line if line is not None else self.lineno)
        return InventoryError(message, location=loc, hint=hint)

    def parse(self, lines: list[str]) -> None:
        inv = self.inv
        pending: dict[str, dict[str, Any]] = {}
        groupname, state = "ungrouped", "hosts"
        for self.lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line[0] in _COMMENT_MARKERS:
                continue
            m = _SECTION.match(line)
            if m:
                groupname, state = m.group(1), m.group(2) or "hosts"
                if state not in ("hosts", "children", "vars"):
                    raise self.error(
                        f"Section [{groupname}:{state}] has unknown type: {state}",
                        "a section is [group], [group:children] or [group:vars]",
                    )
                if groupname not in inv.groups:
                    if state == "vars" and groupname not in pending:
                        pending[groupname] = {"line": self.lineno, "state": state, "name": groupname}
                    inv.add_group(groupname)
                if groupname in pending and state != "vars":
                    if pending[groupname]["state"] == "children":
                        self._add_pending_children(groupname, pending)
                    elif pending[groupname]["state"] == "vars":
                        del pending[groupname]
                continue
            if line.startswith("[") and line.endswith("]"):
                raise self.error(
                    f"Invalid section entry: '{line}'. Please make sure that there are no spaces in the "
                    "section entry, and that there are no other invalid characters",
                    "write section headers as [name], [name:vars] or [name:children] with no spaces",
                )
            if state == "hosts":
                self._host_line(line, groupname)
            elif state == "vars":
                if "=" not in line:
                    raise self.error(
                        f"Expected key=value, got: {line}",
                        f"lines in [{groupname}:vars] must be key=value",
                    )
                key, value = (part.strip() for part in line.split("=", 1))
                self._set(groupname, key, self._value(value))
            else:  # children
                gm = _GROUPNAME.match(line)
                if not gm:
                    raise self.error(
                        f"Expected group name, got: {line}",
                        f"lines in [{groupname}:children] must each name one group",
                    )
                child = gm.group(1)
                if child not in inv.groups:
                    if child not in pending:
                        pending[child] = {
                            "line": self.lineno,
                            "state": state,
                            "name": child,
                            "parents": [groupname],
                        }
                    else:
                        pending[child].setdefault("parents", []).append(groupname)
                else:
                    self._add_child(groupname, child)

        for decl in pending.values():
            if decl["state"] == "vars":
                raise self.error(
                    f"Section [{decl['name']}:vars] not valid for undefined group {decl['name']!r}.",
                    f"define the group with a [{decl['name']}] or [{decl['name']}:children] section "
                    "(or list it under a parent's :children and define it), or remove the :vars section",
                    line=decl["line"],
                )
            parent, name = decl["parents"][-1], decl["name"]
            hint = f"add a [{name}] section (it may be empty) or remove {name!r} from [{parent}:children]"
            if name in self.inv.hosts:
                hint = f"{name!r} is a host: list it under [{parent}]; [{parent}:children] names groups"
            raise self.error(
                f"Section [{parent}:children] includes undefined group {name!r}.", hint, line=decl["line"]
            )

    def _add_pending_children(self, group: str, pending: dict[str, dict[str, Any]]) -> None:
        for parent in pending[group]["parents"]:
            self._add_child(parent, group)
            if parent in pending and pending[parent]["state"] == "children":
                self._add_pending_children(parent, pending)
        del pending[group]

    def _add_child(self, parent: str, child: str) -> None:
        try:
            self.inv.add_child(parent, child)
        except InventoryError as exc:
            raise self.error(exc.message, exc.hint or "fix the group hierarchy") from None

    def _set(self, entity: str, key: str, value: Any) -> None:
        try:
            self.inv.set_variable(entity, key, value)
        except InventoryError as exc:
            raise self.error(exc.message, exc.hint or "fix the variable") from None

    def _value(self, text: str) -> Any:
        try:
            return parse_value(text)
        except Exception as exc:  # literal_eval can raise TypeError, MemoryError, RecursionError ...
            raise self.error(
                f"Cannot evaluate value {text!r}: {exc}",
                "quote the value so it is read as a string, or make it a valid Python literal",
            ) from None

    def _host_line(self, line: str, groupname: str) -> None:
        try:
            tokens = shellwords.split(line, comments=True)
        except ValueError as exc:
            raise self.error(
                f"Error parsing host definition '{line}': {exc}",
                "balance the quotes (or escape a lone quote with a backslash) on this line",
            ) from None
        if not tokens:  # e.g. a line holding only an empty quoted string
            raise self.error("Invalid empty host name provided", "give the host a name")
        pattern = tokens[0]
        try:
            hostnames, port = expand_hostpattern(pattern)
        except RangeError as exc:
            hint = "write ranges as name[1:10], name[01:10], name[a:f] or name[1:10:2]"
            if pattern.startswith("\ufeff"):
                hint = "the file starts with a byte order mark (BOM): save it as UTF-8 without BOM"
            elif pattern.startswith("["):
                hint = (
                    "a section header must be alone on its line (a comment after it starts with #); "
                    "write IPv6 hosts without brackets unless a port follows ([::1]:22)"
                )
            raise self.error(f"Invalid host range in '{pattern}': {exc}", hint) from None
        if pattern.strip().endswith(":") and port is None:
            raise self.error(
                f"Invalid host pattern '{pattern}' supplied, ending in ':' is not allowed, "
                "this character is reserved to provide a port.",
                "write host:port with a numeric port, or is this a YAML file? give it a .yml extension",
            )
        if any(h.strip() == "---" for h in hostnames):
            raise self.error(
                f"Invalid host pattern '{pattern}' supplied, '---' is normally a sign this is a YAML file.",
                "give YAML inventories a .yml/.yaml extension",
            )
        variables: dict[str, Any] = {}
        for tok in tokens[1:]:
            if "=" not in tok:
                raise self.error(
                    f"Expected key=value host variable assignment, got: {tok}",
                    "host variables are written key=value; quote values that contain spaces",
                )
            key, value = tok.split("=", 1)
            variables[key] = self._value(value)
        for host in hostnames:
            if not host:
                raise self.error("Invalid empty host name provided", "give the host a name")
            self.inv.add_host(host, group=groupname, port=port)
            for key, value in variables.items():
                self._set(host, key, value)


def parse_ini_inventory(inventory, text: str, path: str, display_path: str | None = None) -> None:
    """Parse INI `text` (the content of `path`) into `inventory`. Raises InventoryError."""
    _IniParser(inventory, path, display_path or path).parse(text.splitlines())
