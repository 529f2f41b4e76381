"""Canonical JSON for audit records (RFC 8785 style, restricted to the types records use).

A record is hashed over its canonical UTF-8 bytes:

* object keys sorted (by Unicode code point, which is what ``json.dumps(sort_keys=True)`` does; for the
  ASCII keys records use this equals RFC 8785's UTF-16 ordering),
* no insignificant whitespace (``","`` and ``":"`` separators), strings UTF-8 encoded, not
  ``\\u``-escaped (only ``"``, ``\\`` and control characters are escaped, as in RFC 8785),
* only strings, integers, booleans, null, arrays and objects. **Floats never appear**: ``normalize``
  turns every float into a fixed-precision decimal string with 6 fractional digits (``1.5`` ->
  ``"1.500000"``, microsecond precision for durations); NaN/Infinity become ``null``. Integers outside
  the IEEE-754 safe range (|n| > 2**53) become decimal strings, so every JSON implementation reads
  them back exactly. Tuples/sets become arrays (sets sorted), bytes become lowercase hex, any other
  object its ``str()``. Lone surrogates in strings are replaced by U+FFFD.

Because floats are gone, a record read back by any JSON parser (including PostgreSQL ``jsonb``)
re-serialises to the same bytes, so its hash can be recomputed anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

_SAFE_INT = 2**53
_SURROGATE = re.compile("[\ud800-\udfff]")
_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), check_circular=False
).encode


def normalize(value: Any) -> Any:
    """Return ``value`` reduced to canonical-JSON types (see module docstring)."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        return value if -_SAFE_INT <= value <= _SAFE_INT else str(value)
    if t is dict or isinstance(value, Mapping):
        return {str(k): normalize(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [normalize(v) for v in value]
    if t is float:
        return f"{value:.6f}" if math.isfinite(value) else None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return normalize(int(value))
    if isinstance(value, float):
        return normalize(float(value))
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted((normalize(v) for v in value), key=lambda v: dumps(v))
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def dumps(value: Any) -> str:
    """Canonical JSON text of an already-normalised value."""
    return _encode(value)


def encode(text: str) -> bytes:
    """UTF-8 bytes of canonical text; lone surrogates (which UTF-8 cannot carry) become U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return fix_surrogates(text).encode("utf-8")


def canonical_bytes(value: Any) -> bytes:
    """Canonical UTF-8 bytes of any value (normalised first)."""
    return encode(dumps(normalize(value)))


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = encode(data)
    return hashlib.sha256(data).hexdigest()


def fix_surrogates(text: str) -> str:
    """Replace lone surrogates so the text can be UTF-8 encoded."""
    return _SURROGATE.sub("\ufffd", text)


class _Duplicate(ValueError):
    pass


class _NotCanonicalNumber(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            raise _Duplicate(k)
        seen.add(k)
    return dict(pairs)


def _no_float(text: str) -> Any:
    raise _NotCanonicalNumber(f"the number {text} (canonical records hold no floats)")


def _int(text: str) -> int:
    value = int(text)
    if str(value) != text:
        raise _NotCanonicalNumber(f"the number {text} (canonical form: {value})")
    return value


def _constant(text: str) -> Any:
    raise _NotCanonicalNumber(f"{text} (not a JSON value)")


_strict_decode = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_float=_no_float, parse_int=_int, parse_constant=_constant
).decode


def noncanonical_reason(line: bytes) -> str:
    """Why one JSON Lines line (with its newline, if any) is not the canonical encoding of what it
    parses to, in words; "" when it is canonical. Slow; call it only for lines that failed a check."""
    if line.endswith(b"\r\n"):
        return "CRLF line ending"
    if not line.endswith(b"\n"):
        return "no newline at the end of the line"
    body = line[:-1]
    if body != body.strip():
        return "whitespace around the record"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    try:
        value = _strict_decode(text)
    except _Duplicate as exc:
        return f'duplicate key "{exc}" (JSON parsers disagree on which value counts)'
    except _NotCanonicalNumber as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return "not valid JSON"
    try:
        canon = dumps(value)
    except (ValueError, TypeError, RecursionError):
        return "holds values canonical JSON cannot encode"
    if canon == text:
        return ""
    unsorted = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if unsorted == text:
        return "members not in sorted key order"
    if text.count("\\") != canon.count("\\"):
        return "escape sequences (\\uXXXX, \\/) where the canonical form has the character itself"
    if len(text) != len(canon) and "".join(text.split()) == "".join(canon.split()):
        return "insignificant whitespace"
    return "bytes differ from the canonical encoding of the same content"
