"""YAML -> plain Python values that remember where they came from (file, line, column).

Mappings load as YDict and sequences as YList; both carry ``.loc`` (their own position) and
``.key_loc(key)`` / ``.item_loc(i)`` (positions of their keys/items), so every later error can name
the exact file:line:column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runbook.errors import Location, ValidationError
from runbook.model.values import NumberTooLarge, check_int_digits
from runbook.model.yamllib import yaml

try:  # libyaml is much faster when present
    _Base = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader  # type: ignore[misc]


class YDict(dict):
    __slots__ = ("_keys", "loc")

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.loc: Location | None = None
        self._keys: dict[Any, Location] = {}

    def key_loc(self, key: Any) -> Location | None:
        return self._keys.get(key, self.loc)


class YList(list):
    __slots__ = ("_items", "loc")

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.loc: Location | None = None
        self._items: list[Location] = []

    def item_loc(self, i: int) -> Location | None:
        return self._items[i] if 0 <= i < len(self._items) else self.loc


def _loc(node: yaml.Node, file: str) -> Location:
    m = node.start_mark
    return Location(file, m.line + 1, m.column + 1)


def _make_loader(file: str) -> type:
    class Loader(_Base):  # type: ignore[misc, valid-type]
        pass

    def construct_mapping(loader: Any, node: yaml.MappingNode) -> YDict:
        out = YDict()
        out.loc = _loc(node, file)
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise ValidationError(
                    "a mapping key must be a plain value, not a list or mapping",
                    location=_loc(key_node, file),
                    hint="quote the key or restructure the mapping",
                ) from None
            if key in out:
                raise ValidationError(
                    f"duplicate key {key!r} (first at line {out._keys[key].line})",
                    location=_loc(key_node, file),
                    hint="remove one of the two; YAML would silently keep only the last",
                )
            out[key] = loader.construct_object(value_node, deep=True)
            out._keys[key] = _loc(key_node, file)
        return out

    def construct_sequence(loader: Any, node: yaml.SequenceNode) -> YList:
        out = YList(loader.construct_object(child, deep=True) for child in node.value)
        out.loc = _loc(node, file)
        out._items = [_loc(child, file) for child in node.value]
        return out

    def construct_vault(loader: Any, node: yaml.ScalarNode) -> Any:
        from runbook.model.vault import VaultValue

        return VaultValue(loader.construct_scalar(node), location=_loc(node, file))

    def construct_int(loader: Any, node: yaml.ScalarNode) -> int:
        try:
            check_int_digits(str(node.value))
        except NumberTooLarge as exc:
            raise ValidationError(
                str(exc), location=_loc(node, file), hint="quote it if it is meant as text"
            ) from None
        return loader.construct_yaml_int(node)

    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    Loader.add_constructor("!vault", construct_vault)
    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    return Loader


# Bounds on what one YAML document may expand to. Aliases share one node, so a "billion laughs"
# file is small on disk but expands to billions of values in every walk over it (rendering, JSON).
MAX_DEPTH = 100  # nesting of mappings/sequences
MAX_NODES = 1_000_000  # values after expanding every alias


def _check_bounds(root: yaml.Node, file: str) -> None:
    """Refuse a document nested deeper than MAX_DEPTH or expanding (through aliases) to more than
    MAX_NODES values, before anything recursive walks it. Iterative: no recursion limit to hit."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size.get(id(c), 1) for c in children)
            if size[key] > MAX_NODES:
                raise ValidationError(
                    f"this value expands to more than {MAX_NODES:,} values (aliases of aliases?)",
                    location=_loc(node, file),
                    hint="a YAML alias (*name) repeats its anchor's whole value; do not nest them like this",
                )
            continue
        if key in size or key in on_path:
            continue  # shared (an alias): counted once; a cycle is refused by the constructor
        if depth > MAX_DEPTH:
            raise ValidationError(
                f"values nested more than {MAX_DEPTH} levels deep",
                location=_loc(node, file),
                hint="flatten the structure; no runbook needs this depth",
            )
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if isinstance(c, yaml.CollectionNode))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _end_location(before: str, file: str) -> Location:
    """file:line:column of the character just after ``before`` (the text preceding it)."""
    return Location(file, before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1)


def reader_error_location(exc: yaml.reader.ReaderError, text: str, file: str) -> Location:
    """file:line:column of the character a YAML reader refused (libyaml counts UTF-8 bytes)."""
    before = text.encode("utf-8", "surrogateescape")[: exc.position].decode("utf-8", "replace")
    return _end_location(before, file)


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors become ValidationError with file:line:column."""
    loader = _make_loader(file)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_bounds(node, file)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = exc.problem or exc.context or "invalid YAML"
        if "single document" in (exc.context or ""):
            problem = "this file holds several YAML documents (---); it must hold one"
        raise ValidationError(
            f"YAML syntax error: {problem}",
            location=loc,
            hint="check indentation and quoting around this position "
            "(a value starting with '{{' must be quoted)",
        ) from None
    except yaml.reader.ReaderError as exc:  # a control character (NUL ...) in the text
        ch = exc.character
        code = ord(ch) if isinstance(ch, str) else int(ch)
        raise ValidationError(
            f"YAML error: control character U+{code:04X} is not allowed in YAML text",
            location=reader_error_location(exc, text, file),
            hint="remove the control character (is this a binary file?)",
        ) from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"YAML error: {exc}", location=Location(file)) from None
    except RecursionError:  # pragma: no cover - _check_bounds refuses such depth first
        raise ValidationError(
            "values nested too deeply", location=Location(file), hint="flatten the structure"
        ) from None
    finally:
        loader.dispose()


def read_text(path: str | Path, what: str = "file") -> str:
    """A file's UTF-8 text; a missing, unreadable or non-UTF-8 file is a ValidationError naming it
    (and, for bad bytes, the line and column where they are)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ValidationError(f"{what} not found: {p}", hint="check the path") from None
    except IsADirectoryError:
        raise ValidationError(
            f"{what} {p} is a directory", location=Location(str(p)), hint="give the path of a file"
        ) from None
    except OSError as exc:  # no permission, ...
        raise ValidationError(
            f"cannot read {what} {p}: {exc.strerror or exc}", location=Location(str(p))
        ) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark (Windows editors)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8", errors="replace")
        raise ValidationError(
            f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason})",
            location=_end_location(good, str(p)),
            hint="save the file as UTF-8",
        ) from None


def load_yaml_file(path: str | Path, what: str = "file") -> Any:
    return load_yaml_text(read_text(path, what), str(path))


VAULT_HEADER = b"$ANSIBLE_VAULT"


def is_vault_file(path: str | Path) -> bool:
    """Is this file encrypted whole with ansible-vault (``$ANSIBLE_VAULT;1.1;AES256`` first)?"""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(VAULT_HEADER)) == VAULT_HEADER
    except OSError:
        return False


def load_vars_file(path: str | Path, what: str = "file") -> tuple[Any, bool]:
    """A YAML file of variables (vars_files, ``-e @file``), decrypted first when ansible-vault
    encrypted it whole; and whether it was (every value of such a file is a secret)."""
    if not is_vault_file(path):
        return load_yaml_file(path, what), False
    from runbook.errors import InventoryError
    from runbook.model.inventory_yaml import decrypt_vault_text

    try:
        plain = decrypt_vault_text(Path(path).read_bytes())
    except InventoryError as exc:
        raise ValidationError(
            f"{what} {path}: {exc.message}", location=Location(str(path)), hint=exc.hint
        ) from None
    except OSError as exc:
        raise ValidationError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{what} {path} is not UTF-8 text once decrypted") from None
    return load_yaml_text(text, str(path)), True
