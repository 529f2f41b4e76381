"""Small checks and helpers for model values: literal numbers, variable names, templates, did-you-mean
suggestions. Shared by the step and runbook parsers, validation and the CLI."""

from __future__ import annotations

import difflib
import keyword
import math
from collections.abc import Collection
from typing import Any


def plain(value: Any) -> Any:
    """YDict/YList -> dict/list, for messages."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def is_variable_name(name: Any) -> bool:
    """A name Jinja2 can read as a variable: an identifier, not a Python keyword (for, if, None)."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n", "t", "f"}


def number_problem(value: Any, *, integer: bool = False, positive: bool = False) -> str | None:
    """Why a literal value is not a usable count/duration (None if it is, or if it is a template
    that can only be checked once rendered)."""
    if is_template(value):
        return None
    what = "a whole number" if integer else "a number"
    if isinstance(value, bool):
        return f"must be {what}, got {value!r}"
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return f"must be {what} (or a {{{{ template }}}}), got {value!r}"
    if not isinstance(value, (int, float)):
        return f"must be {what}, got {plain(value)!r}"[:200]
    if not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if integer and not float(value).is_integer():
        return f"must be a whole number, got {value!r}"
    if value < 0 or (positive and value == 0):
        return f"must be {'greater than 0' if positive else 'at least 0'}, got {value!r}"
    return None


def suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else ""
