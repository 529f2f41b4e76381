"""The Ansible filters and tests runbooks commonly use, re-implemented (ansible is not imported)."""

from __future__ import annotations

import base64
import hashlib
import json
import ntpath
import os.path
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from runbook.model.values import FALSE_WORDS, TRUE_WORDS, json_int
from runbook.model.yamllib import yaml

_TRUE = TRUE_WORDS
_FALSE = FALSE_WORDS | {""}


class FilterError(ValueError):
    pass


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value == 1
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise FilterError(f"cannot interpret {value!r} as a boolean (use yes/no, true/false, 1/0)")


def to_int(value: Any, default: int = 0, base: int = 10) -> int:
    try:
        if isinstance(value, str) and base != 10:
            return int(value, base)
        return (
            int(float(value)) if isinstance(value, (str, float)) and not str(value).isdigit() else int(value)
        )
    except (TypeError, ValueError):
        return default


def to_float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def to_json(value: Any, **kw: Any) -> str:
    return json.dumps(value, default=str, **kw)


def to_nice_json(value: Any, indent: int = 4, **kw: Any) -> str:
    return json.dumps(value, default=str, indent=indent, sort_keys=True, **kw)


def from_json(value: str) -> Any:
    return json.loads(value, parse_int=json_int)


def to_yaml(value: Any, **kw: Any) -> str:
    return yaml.safe_dump(_plain(value), default_flow_style=kw.pop("default_flow_style", None), **kw)


def to_nice_yaml(value: Any, indent: int = 4, **kw: Any) -> str:
    return yaml.safe_dump(_plain(value), default_flow_style=False, indent=indent, sort_keys=True, **kw)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def from_yaml(value: str) -> Any:
    return yaml.safe_load(value)


def b64encode(value: Any, encoding: str = "utf-8") -> str:
    data = value if isinstance(value, bytes) else str(value).encode(encoding)
    return base64.b64encode(data).decode("ascii")


def b64decode(value: str, encoding: str = "utf-8") -> str:
    return base64.b64decode(value).decode(encoding)


def regex_replace(
    value: Any,
    pattern: str,
    replacement: str = "",
    ignorecase: bool = False,
    multiline: bool = False,
    count: int = 0,
) -> str:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.sub(pattern, replacement, str(value), count=count, flags=flags)


def regex_search(
    value: Any, pattern: str, *groups: str, ignorecase: bool = False, multiline: bool = False
) -> Any:
    """As ansible-core's: the match, or the listed groups (``'\\1'``, ``'\\g<name>'``), or None."""
    wanted: list[int | str] = []
    for g in groups:  # read before searching, as Ansible does (a bad reference is an error)
        m = re.match(r"\\g<(\S+)>", g) if g.startswith("\\g") else re.match(r"\\(\d+)", g)
        if not g.startswith("\\") or m is None:
            raise FilterError(f"regex_search: bad group reference {g!r} (use '\\1' or '\\g<name>')")
        wanted.append(m.group(1) if g.startswith("\\g") else int(m.group(1)))
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    found = re.search(pattern, str(value), flags)
    if not found:
        return None
    if not wanted:
        return found.group(0)
    return [found.group(g) for g in wanted]


def regex_findall(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> list:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.findall(pattern, str(value), flags)


def regex_escape(value: str) -> str:
    return re.escape(value)


def quote(value: Any) -> str:
    return shlex.quote(str(value))


def mandatory(value: Any, msg: str | None = None) -> Any:
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        raise FilterError(msg or "mandatory variable is not defined")
    return value


def ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def combine(*dicts: Mapping, recursive: bool = False, list_merge: str = "replace") -> dict:
    out: dict = {}
    for d in dicts:
        if isinstance(d, list):
            for sub in d:
                out = combine(out, sub, recursive=recursive)
            continue
        for k, v in d.items():
            if recursive and isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
                out[k] = combine(out[k], v, recursive=True)
            elif list_merge == "append" and isinstance(v, list) and isinstance(out.get(k), list):
                out[k] = out[k] + v
            else:
                out[k] = v
    return out


def dict2items(value: Mapping, key_name: str = "key", value_name: str = "value") -> list:
    return [{key_name: k, value_name: v} for k, v in value.items()]


def items2dict(value: Iterable[Mapping], key_name: str = "key", value_name: str = "value") -> dict:
    return {item[key_name]: item[value_name] for item in value}


def flatten(value: Iterable, levels: int | None = None) -> list:
    out: list = []
    for item in value:
        if isinstance(item, (list, tuple)) and (levels is None or levels > 0):
            out.extend(flatten(item, None if levels is None else levels - 1))
        elif item is not None:
            out.append(item)
    return out


def unique(value: Iterable) -> list:
    out: list = []
    for v in value:
        if v not in out:
            out.append(v)
    return out


def hash_filter(value: Any, algo: str = "sha1") -> str:
    return hashlib.new(algo, str(value).encode()).hexdigest()


def human_to_bytes(value: Any, default_unit: str | None = None) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTPE]?)(i?B?|b)?\s*", str(value), re.I)
    if not m:
        raise FilterError(f"human_to_bytes: cannot parse {value!r}")
    num, unit = float(m.group(1)), (m.group(2) or default_unit or "").upper()
    return int(num * 1024 ** "BKMGTPE".index(unit or "B")) if unit != "B" else int(num)


def version_compare(value: Any, other: Any, op: str = "eq", strict: bool = False) -> bool:
    def key(v: Any) -> list:
        return [int(p) if p.isdigit() else p for p in re.findall(r"\d+|[a-z]+", str(v).lower())]

    a, b = key(value), key(other)
    ops = {
        "eq": a == b, "==": a == b, "ne": a != b, "!=": a != b, "<>": a != b,
        "lt": a < b, "<": a < b, "le": a <= b, "<=": a <= b,
        "gt": a > b, ">": a > b, "ge": a >= b, ">=": a >= b,
    }  # fmt: skip
    if op not in ops:
        raise FilterError(f"version test: unknown operator {op!r}")
    return ops[op]


FILTERS = {
    "bool": to_bool,
    "int": to_int,
    "float": to_float,
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "from_json": from_json,
    "to_yaml": to_yaml,
    "to_nice_yaml": to_nice_yaml,
    "from_yaml": from_yaml,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "regex_replace": regex_replace,
    "regex_search": regex_search,
    "regex_findall": regex_findall,
    "regex_escape": regex_escape,
    "basename": posixpath.basename,
    "dirname": posixpath.dirname,
    "win_basename": ntpath.basename,
    "expanduser": os.path.expanduser,
    "realpath": os.path.realpath,
    "splitext": lambda p: list(posixpath.splitext(p)),
    "quote": quote,
    "shell_quote": quote,
    "mandatory": mandatory,
    "ternary": ternary,
    "combine": combine,
    "dict2items": dict2items,
    "items2dict": items2dict,
    "flatten": flatten,
    "unique": unique,
    "union": lambda a, b: unique(list(a) + list(b)),
    "intersect": lambda a, b: [x for x in unique(a) if x in b],
    "difference": lambda a, b: [x for x in unique(a) if x not in b],
    "hash": hash_filter,
    "checksum": lambda v: hash_filter(v, "sha1"),
    "sha256": lambda v: hash_filter(v, "sha256"),
    "md5": lambda v: hash_filter(v, "md5"),
    "human_to_bytes": human_to_bytes,
    "zip": lambda a, *b: [list(t) for t in zip(a, *b, strict=False)],
    "type_debug": lambda v: type(v).__name__,
}


def _result_test(field: str, want: bool):
    def test(value: Any) -> bool:
        if not isinstance(value, Mapping):
            raise FilterError(f"the '{field}' test needs a registered result")
        if field == "failed":
            return bool(value.get("failed")) == want
        return bool(value.get(field)) == want

    return test


TESTS = {
    "match": lambda v, p, ignorecase=False, multiline=False: bool(
        re.match(p, str(v), (re.I if ignorecase else 0) | (re.M if multiline else 0))
    ),
    "search": lambda v, p, ignorecase=False, multiline=False: bool(
        re.search(p, str(v), (re.I if ignorecase else 0) | (re.M if multiline else 0))
    ),
    "regex": lambda v, p, ignorecase=False, multiline=False, match_type="search": bool(
        getattr(re, match_type)(p, str(v), (re.I if ignorecase else 0) | (re.M if multiline else 0))
    ),
    "version": version_compare,
    "version_compare": version_compare,
    "failed": _result_test("failed", True),
    "failure": _result_test("failed", True),
    "succeeded": _result_test("failed", False),
    "success": _result_test("failed", False),
    "successful": _result_test("failed", False),
    "changed": _result_test("changed", True),
    "change": _result_test("changed", True),
    "skipped": _result_test("skipped", True),
    "skip": _result_test("skipped", True),
    "truthy": lambda v: bool(v),
    "falsy": lambda v: not bool(v),
    "contains": lambda seq, v: v in seq,
    "subset": lambda a, b: set(a) <= set(b),
    "superset": lambda a, b: set(a) >= set(b),
    "abs": lambda p: posixpath.isabs(str(p)),
}
