"""YAML -> plain Python values that remember where they came from (file, line, column).

Mappings load as YDict and sequences as YList; both carry ``.loc`` (their own position) and
``.key_loc(key)`` / ``.item_loc(i)`` (positions of their keys/items), so every later error can name
the exact file:line:column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from runbook.errors import Location, ValidationError

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

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    Loader.add_constructor("!vault", construct_vault)
    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    return Loader


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors become ValidationError with file:line:column."""
    try:
        return yaml.load(text, Loader=_make_loader(file))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ValidationError(
            f"YAML syntax error: {problem}",
            location=loc,
            hint="check indentation and quoting around this position "
            "(a value starting with '{{' must be quoted)",
        ) from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"YAML error: {exc}", location=Location(file)) from None


def load_yaml_file(path: str | Path) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"file not found: {p}", hint="check the path") from None
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", location=Location(str(p))
        ) from None
    return load_yaml_text(text, str(p))
