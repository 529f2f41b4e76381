"""YAML/JSON data files and YAML inventories, read the way ansible-core 2.19 reads them.

* `load_data_file` -- what Ansible's DataLoader does for group_vars/host_vars files and YAML
  inventories: whole-file vault decryption, JSON first (with ``__ansible_unsafe``/``__ansible_vault``
  objects), then YAML 1.1 through PyYAML's safe loader plus Ansible's ``!unsafe`` and ``!vault`` tags.
* `parse_yaml_inventory` -- the `yaml` inventory plugin (groups with hosts/vars/children, strings
  folded into one host name, range host keys, and its warnings).

Ansible itself is imported lazily and only to decrypt vault data (`VaultValue.decrypt`).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from runbook.errors import InventoryError, Location
from runbook.model import vault
from runbook.model.hostpattern import RangeError, expand_hostpattern
from runbook.model.loader import reader_error_location
from runbook.model.values import MAX_INT_DIGITS, NumberTooLarge, check_int_digits, json_int
from runbook.model.vault import VaultValue
from runbook.model.yamllib import yaml

try:  # libyaml is much faster; Ansible uses it too when present
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

_VAULT_HEADER = "$ANSIBLE_VAULT"


class Unsafe(str):
    """A string Ansible must never template (``!unsafe`` in YAML, ``__ansible_unsafe`` in JSON)."""

    __slots__ = ()


def vault_password() -> bool | None:
    """True when a vault secret is configured (--vault-id, --vault-password-file, --ask-vault-pass,
    ANSIBLE_VAULT_PASSWORD_FILE, ANSIBLE_VAULT_IDENTITY_LIST, ansible.cfg), else None."""
    return True if vault.is_configured() else None


def decrypt_vault_text(ciphertext: str | bytes, path: str | None = None) -> bytes:
    """A whole vault-encrypted file's plaintext, decrypted with the run's keyring."""
    try:
        return vault.decrypt_bytes(ciphertext, Location(path) if path else None)
    except vault.VaultError as exc:
        if not vault.is_configured():
            raise InventoryError(
                "Attempting to decrypt vault data but no vault password is available",
                location=exc.location,
                hint=exc.hint,
            ) from None
        reason = exc.message.removeprefix("cannot decrypt vault value: ")
        raise InventoryError(f"Vault decryption failed: {reason}", location=exc.location, hint=exc.hint) from None


# --- YAML loader -------------------------------------------------------------------------------


class _TooLarge(yaml.constructor.ConstructorError):
    """An integer with more digits than Python reads."""


class _Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    _unsafe_depth = 0
    _file = "<string>"

    def construct_yaml_str(self, node):  # type: ignore[override]
        value = self.construct_scalar(node)
        return Unsafe(value) if self._unsafe_depth else value

    def _resolve_and_construct(self, node):
        copied = copy.copy(node)
        copied.tag = self.resolve(type(node), node.value, (True, False))
        return self.construct_object(copied, deep=True)

    def construct_unsafe(self, node):
        self._unsafe_depth += 1
        try:
            return self._resolve_and_construct(node)
        finally:
            self._unsafe_depth -= 1

    def construct_int(self, node):
        try:
            check_int_digits(str(node.value))
        except NumberTooLarge as exc:
            raise _TooLarge(None, None, str(exc), node.start_mark) from None
        return self.construct_yaml_int(node)

    def construct_vault(self, node):
        ciphertext = self._resolve_and_construct(node)
        if not isinstance(ciphertext, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"the {node.tag!r} tag requires a string value", node.start_mark
            )
        mark = node.start_mark
        return VaultValue(str(ciphertext), location=Location(self._file, mark.line + 1, mark.column + 1))


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_int)
_Loader.add_constructor("tag:yaml.org,2002:str", _Loader.construct_yaml_str)
_Loader.add_constructor("tag:yaml.org,2002:python/unicode", _Loader.construct_yaml_str)
_Loader.add_constructor("tag:yaml.org,2002:python/dict", _Loader.construct_yaml_map)
_Loader.add_constructor("!unsafe", _Loader.construct_unsafe)
_Loader.add_constructor("!vault", _Loader.construct_vault)
_Loader.add_constructor("!vault-encrypted", _Loader.construct_vault)


def _json_hook(obj: dict, display_path: str) -> Any:
    if "__ansible_unsafe" in obj:
        if type(obj["__ansible_unsafe"]) is not str:
            raise TypeError("__ansible_unsafe is not a string")
        return Unsafe(obj["__ansible_unsafe"])
    if "__ansible_vault" in obj:
        if type(obj["__ansible_vault"]) is not str:
            raise TypeError("__ansible_vault is not a string")
        return VaultValue(obj["__ansible_vault"], location=Location(display_path))
    return obj


def read_text(path: str, display_path: str | None = None) -> str:
    """File content as text (surrogateescape, like Ansible), vault-decrypted if it is a vault file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InventoryError(
            f"Cannot read {path}: {exc.strerror}",
            location=Location(display_path or path),
            hint="check the path and its permissions",
        ) from None
    if data.startswith(_VAULT_HEADER.encode()):
        try:
            data = decrypt_vault_text(data)
        except InventoryError as exc:
            raise InventoryError(
                exc.message, location=Location(display_path or path), hint=exc.hint
            ) from None
    return data.decode("utf-8", "surrogateescape")


def yaml_error(exc: Exception, display_path: str, what: str = "YAML", text: str = "") -> InventoryError:
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: no mark, a position
        code = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        return InventoryError(
            f"{what} error: control character U+{code:04X} is not allowed in YAML text",
            location=reader_error_location(exc, text, display_path),
            hint="remove the control character, or write it as an escape (\\x01) in a double-quoted string",
        )
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    kind = "error" if isinstance(exc, yaml.constructor.ConstructorError) else "syntax error"
    message = f"{what} {kind}: {problem}" + (f" ({context})" if context else "")
    loc = Location(display_path, mark.line + 1, mark.column + 1) if mark else Location(display_path)
    hint = "fix the YAML at that position (indentation with spaces, ':' after keys, quotes balanced)"
    if isinstance(exc, _TooLarge):
        hint = "quote it if it is meant as text"
    return InventoryError(message, location=loc, hint=hint)


def parse_data(text: str, display_path: str) -> Any:
    """JSON first, then YAML -- Ansible's `from_yaml`. Raises InventoryError on a YAML syntax error."""

    def hook(obj: dict) -> Any:
        return _json_hook(obj, display_path)

    try:
        return json.loads(text, object_hook=hook, parse_int=json_int)
    except NumberTooLarge as exc:
        m = re.search(rf"[0-9]{{{MAX_INT_DIGITS + 1},}}", text)
        line = text.count("\n", 0, m.start()) + 1 if m else None
        col = m.start() - text.rfind("\n", 0, m.start()) if m else None
        raise InventoryError(
            str(exc), location=Location(display_path, line, col), hint="quote it if it is meant as text"
        ) from None
    except Exception:
        pass
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, display_path, text=text) from None
    except UnicodeEncodeError as exc:  # bytes that are not UTF-8 (kept as surrogates when read)
        before = text[: exc.start]
        bad = ord(text[exc.start]) - 0xDC00 if 0xDC80 <= ord(text[exc.start]) <= 0xDCFF else None
        raise InventoryError(
            "YAML file is not UTF-8 text" + (f" (byte 0x{bad:02x})" if bad is not None else ""),
            location=Location(display_path, before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1),
            hint="save the file as UTF-8",
        ) from None


def load_data_file(path: str, display_path: str | None = None) -> Any:
    display_path = display_path or path
    return parse_data(read_text(path, display_path), display_path)


# --- group_vars/ and host_vars/ files (the host_group_vars vars plugin) --------------------------

_VARS_EXTS = (".yml", ".yaml", ".json")


def find_vars_files(basedir: str, subdir: str, name: str, warn: Callable[[str], None]) -> list[str]:
    """Files for group/host `name` under `basedir`/`subdir`: ``name`` (a file, or a directory of
    files read recursively in sorted order), else ``name.yml``, ``name.yaml``, ``name.json``."""
    if not name or name[0] == os.sep:
        return []
    opath = os.path.join(basedir, subdir)
    if not os.path.isdir(opath):
        if os.path.exists(opath):
            warn(f"Found {subdir} that is not a directory, skipping: {opath}")
        return []
    base = os.path.join(opath, name)
    for ext in ("", *_VARS_EXTS):
        full = base + ext
        if os.path.exists(full):
            return _dir_vars_files(full) if os.path.isdir(full) else [full]
    return []


def _dir_vars_files(path: str) -> list[str]:
    found: list[str] = []
    for name in sorted(os.listdir(path)):
        if name.startswith(".") or name.endswith("~"):
            continue
        ext = os.path.splitext(name)[1]
        full = os.path.join(path, name)
        if os.path.isdir(full) and not ext:
            found.extend(_dir_vars_files(full))
        elif os.path.isfile(full) and (not ext or ext in _VARS_EXTS):
            found.append(full)
    return found


def display_path(path: str) -> str:
    """Paths in messages: relative to the current directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    if key is True or key is False:
        return "true" if key else "false"
    if key is None:
        return "null"
    return repr(key) if isinstance(key, float) else str(key)


def to_jsonable(value: Any, *, tag_unsafe: bool = True) -> Any:
    """Values as Ansible's inventory_legacy JSON profile serialises them (``ansible-inventory --list``);
    ``tag_unsafe=False``: as ``ansible-inventory --host`` prints them (unsafe strings plain)."""
    if isinstance(value, Unsafe):
        return {"__ansible_unsafe": str(value)} if tag_unsafe else str(value)
    if isinstance(value, VaultValue):
        return {"__ansible_vault": value.ciphertext}
    if isinstance(value, dict):
        return {_json_key(k): to_jsonable(v, tag_unsafe=tag_unsafe) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v, tag_unsafe=tag_unsafe) for v in value]
    if isinstance(value, (_dt.date, _dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def reveal_vault(value: Any) -> Any:
    """A copy of `value` with every `VaultValue` decrypted (InventoryError without a password)."""
    if isinstance(value, VaultValue):
        return value.decrypt()
    if isinstance(value, dict):
        return {k: reveal_vault(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal_vault(v) for v in value]
    return value


# --- YAML inventory plugin ---------------------------------------------------------------------


def locate_key(text: str, keys: list[Any]) -> int | None:
    """1-based line of the mapping key reached by `keys` in YAML `text` (best effort, for errors)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        for knode, vnode in node.value:
            if isinstance(knode, yaml.ScalarNode) and knode.value == str(key):
                line, node = knode.start_mark.line + 1, vnode
                break
        else:
            break
    return line


class _YamlInventory:
    def __init__(self, inventory, text: str, display_path: str, listing: bool = False):
        self.inv = inventory
        self.text = text
        self.display_path = display_path
        self.listing = listing  # the data has ansible-inventory --list's "_meta" key

    def error(self, message: str, hint: str, keys: list[Any]) -> InventoryError:
        return InventoryError(
            message, location=Location(self.display_path, locate_key(self.text, keys)), hint=hint
        )

    def group(self, name: Any, data: Any, keys: list[Any]) -> Any:
        inv = self.inv
        if not isinstance(data, (Mapping, type(None))):
            inv.warn(f"Skipping '{name}' as this is not a valid group definition")
            return name
        if not isinstance(name, str) or not name:
            raise self.error(
                f"Unable to add group {name!r}: expected a non-empty string",
                "group names must be strings; quote numeric names",
                keys,
            )
        inv.add_group(name)
        if data is None:
            return name
        data = dict(data)
        for section in ("vars", "children", "hosts"):
            if section in data:
                if isinstance(data[section], str):
                    data[section] = {data[section]: None}
                if not isinstance(data[section], (Mapping, type(None))):
                    hint = f"write {section}: as a mapping (name: value lines), not a list"
                    if self.listing:
                        hint = (
                            "this is `ansible-inventory --list` JSON output, not an inventory: "
                            "save `ansible-inventory --list --yaml` output instead"
                        )
                    raise self.error(
                        f'Invalid "{section}" entry for "{name}" group, requires a dictionary, '
                        f'found "{type(data[section]).__name__}" instead.',
                        hint,
                        [*keys, section],
                    )
        for key, value in data.items():
            if not isinstance(value, (Mapping, type(None))):
                inv.warn(
                    f"Skipping key ({key}) in group ({name}) as it is not a mapping, "
                    f"it is a {type(value).__name__}"
                )
                continue
            if value is None:
                continue
            if key == "vars":
                for var, val in value.items():
                    self._set(name, var, val, [*keys, "vars", var])
            elif key == "children":
                for sub, subdata in value.items():
                    sub = self.group(sub, subdata, [*keys, "children", sub])
                    try:
                        inv.add_child(name, sub)
                    except InventoryError as exc:
                        hint = f"give {sub!r} a mapping (hosts:, children:, vars:) or leave it empty"
                        raise self.error(exc.message, hint, [*keys, "children", sub]) from None
            elif key == "hosts":
                for pattern, hvars in value.items():
                    self._hosts(name, pattern, hvars, [*keys, "hosts", pattern])
            else:
                inv.warn(
                    f'Skipping unexpected key ({key}) in group ({name}), only "vars", "children" '
                    'and "hosts" are valid'
                )
        return name

    def _set(self, entity: str, key: Any, value: Any, keys: list[Any]) -> None:
        try:
            self.inv.set_variable(entity, key, value)
        except InventoryError as exc:
            raise self.error(exc.message, exc.hint or "", keys) from None

    def _hosts(self, group: str, pattern: Any, hvars: Any, keys: list[Any]) -> None:
        try:
            names, port = expand_hostpattern(pattern)
        except TypeError:
            raise self.error(
                f"Host pattern {pattern} must be a string. Enclose integers/floats in quotation marks.",
                "quote the host name",
                keys,
            ) from None
        except RangeError as exc:
            raise self.error(
                f"Invalid host range in '{pattern}': {exc}",
                "write ranges as name[1:10], name[01:10], name[a:f] or name[1:10:2]",
                keys,
            ) from None
        hvars = hvars or {}
        if not isinstance(hvars, Mapping):
            raise self.error(
                f"Invalid data from file, expected dictionary and got: {hvars!r}",
                f"host {pattern!r} must map to variables (key: value) or nothing",
                keys,
            )
        for host in names:
            if not host:
                raise self.error("Invalid empty host name provided", "give the host a name", keys)
            self.inv.add_host(host, group=group, port=port)
            for var, val in hvars.items():
                self._set(host, var, val, [*keys, var])


def parse_yaml_inventory(inventory, data: Any, text: str, display_path: str) -> None:
    """Feed already-loaded YAML `data` (from `text`) into `inventory` like the `yaml` plugin."""
    if not data:
        raise InventoryError(
            "Parsed empty YAML file",
            location=Location(display_path),
            hint="add groups to the inventory or remove the file",
        )
    if not isinstance(data, Mapping):
        raise InventoryError(
            f"YAML inventory has invalid structure, it should be a dictionary, got: {type(data).__name__}",
            location=Location(display_path, 1),
            hint="the top level must map group names (e.g. all:) to hosts/children/vars",
        )
    if data.get("plugin"):
        raise InventoryError(
            "Plugin configuration YAML file, not YAML inventory (dynamic inventory plugins are not supported)",
            location=Location(display_path, locate_key(text, ["plugin"])),
            hint="export it with `ansible-inventory --list -y` and use the static result",
        )
    parser = _YamlInventory(inventory, text, display_path, listing="_meta" in data)
    for name, group_data in data.items():
        parser.group(name, group_data, [name])
