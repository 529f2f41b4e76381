"""A step kind's arguments after rendering: text turned into the types the kind's argument schema
(``StepKind.schema``) asks for, as Ansible's argument spec does. Used wherever a step's arguments are
rendered: a step's attempt, its undo during rollback."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runbook.model.values import FALSE_WORDS, TRUE_WORDS


def types_of(schema: Mapping[str, Any]) -> set[str]:
    t = schema.get("type")
    return {t} if isinstance(t, str) else set(t or ())


def coerce(value: Any, schema: Any) -> Any:
    """Convert rendered text to the type the module's schema asks for, as Ansible's argument spec
    does: ``port: "{{ port }}"`` with ``-e port=8080`` (a string) becomes the integer 8080."""
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: coerce(v, props.get(k)) for k, v in value.items()} if props else value
    if isinstance(value, list):
        items = schema.get("items")
        return [coerce(v, items) for v in value] if isinstance(items, Mapping) else value
    types = types_of(schema)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # `content: "{{ port }}"` renders to a number; a string-only argument gets its text
        return str(value) if "string" in types and not types & {"integer", "number"} else value
    if not isinstance(value, str) or not types or "string" in types:
        return value
    text = value.strip()
    if types & {"integer", "number"} and re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    if "boolean" in types and text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    if "null" in types and text.lower() in ("", "none", "null"):
        return None
    return value


_BOOLS = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False)}
