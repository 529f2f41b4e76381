"""Small checks and helpers for model values: literal numbers, variable names, templates, did-you-mean
suggestions. Shared by the step and runbook parsers, validation and the CLI."""

from __future__ import annotations

import difflib
import keyword
import math
from collections.abc import Collection
from typing import Any

from runbook.model.lazyre import lazy_re


def plain(value: Any) -> Any:
    """YDict/YList -> dict/list, for messages."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


# `is_variable_name` as a JSON Schema pattern, for editors (ASCII; keywords are refused when read)
VARIABLE_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"


def is_variable_name(name: Any) -> bool:
    """A name Jinja2 can read as a variable: an identifier, not a Python keyword (for, if, None)."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


# The words of a yes/no value, as Ansible's ``boolean()`` reads them (BOOLEANS_TRUE/BOOLEANS_FALSE):
# the one home of the rule for keywords, module arguments, filters, conditions and host variables.
TRUE_WORDS = frozenset({"true", "yes", "on", "y", "t", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "n", "f", "0"})
BOOL_WORDS = TRUE_WORDS | FALSE_WORDS


def truthy(value: Any) -> bool:
    """A host variable's yes/no (``ansible_become: yes``): text is true only when it is a true word,
    anything else by Python's truth (Ansible's ``boolean(strict=False)``)."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


# Python refuses to convert integers of more digits than this between text and int (a guard against
# quadratic-time conversions); every reader of user text refuses them first, with a clear message.
MAX_INT_DIGITS = 4300
# No count (retries, forks) or duration in seconds (timeout, delay, pause) is larger: anything bigger
# is a mistake, and the clocks and waits of the standard library refuse such values anyway.
LARGEST = 10**9


class NumberTooLarge(ValueError):
    """An integer written with more than MAX_INT_DIGITS digits."""


def check_int_digits(text: str) -> None:
    """Raise NumberTooLarge when the integer literal ``text`` has more digits than Python reads."""
    digits = sum(1 for c in text if c.isdigit()) if len(text) > MAX_INT_DIGITS else 0
    if digits > MAX_INT_DIGITS:
        raise NumberTooLarge(
            f"an integer of {digits} digits is too large (at most {MAX_INT_DIGITS} digits are read)"
        )


def json_int(text: str) -> int:
    """``parse_int`` for json.loads: an integer, or NumberTooLarge instead of Python's ValueError."""
    check_int_digits(text)
    return int(text)


_MAX_INT_BITS = int(MAX_INT_DIGITS / 0.30103)  # about the bit_length of MAX_INT_DIGITS digits
_TEN_TO_MAX = 10**MAX_INT_DIGITS  # the smallest integer of MAX_INT_DIGITS + 1 digits


def huge_int(value: Any, budget: int = 10_000) -> int | None:
    """The first integer (in ``value`` or the lists/mappings inside it, looking at ``budget`` values
    at most) too large to be written as text, or None. Such a value cannot be stored, shown or sent."""
    stack, seen = [value], 0
    while stack and seen < budget:
        v = stack.pop()
        seen += 1
        if isinstance(v, int) and not isinstance(v, bool):
            bits = v.bit_length()
            if bits > _MAX_INT_BITS + 4 or (bits > _MAX_INT_BITS - 4 and abs(v) >= _TEN_TO_MAX):
                return v
        elif isinstance(v, dict):
            stack.extend(v.values())
            stack.extend(v.keys())
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
    return None


def shown_number(value: Any) -> str:
    """A number for a message: huge integers by their size, not by their (unprintable) digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value)


def port_problem(value: Any) -> str | None:
    """Why ``value`` (an inventory's ansible_port, an int or its text) is not a TCP port (or None)."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not text.isdigit() or len(text) > 5 or not 1 <= int(text) <= 65535:
        shown = shown_number(value) if isinstance(value, int) else repr(value)[:60]
        return f"must be a port number from 1 to 65535, got {shown}"
    return None


def number_problem(
    value: Any, *, integer: bool = False, positive: bool = False, maximum: int = LARGEST
) -> str | None:
    """Why a literal value is not a usable count/duration (None if it is, or if it is a template
    that can only be checked once rendered). Never converts a huge integer to float."""
    if is_template(value):
        return None
    what = "a whole number" if integer else "a number"
    if isinstance(value, bool):
        return f"must be {what}, got {value!r}"
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if len(text) <= MAX_INT_DIGITS and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            return f"must be {what} (or a {{{{ template }}}}), got {value[:100]!r}"
    if not isinstance(value, (int, float)):
        return f"must be {what}, got {plain(value)!r}"[:200]
    if isinstance(value, float) and math.isnan(value):
        return f"must be a finite number, got {value!r}"
    if value < 0 or (positive and value == 0):
        return f"must be {'greater than 0' if positive else 'at least 0'}, got {shown_number(value)}"
    if value > maximum:
        if isinstance(value, float) and math.isinf(value):
            return f"must be a finite number, got {value!r}"
        return f"must be at most {maximum:,}, got {shown_number(value)}"
    if integer and isinstance(value, float) and not value.is_integer():
        return f"must be a whole number, got {value!r}"
    return None


def to_number(
    value: Any, *, integer: bool = False, positive: bool = False, maximum: int = LARGEST
) -> int | float:
    """``value`` (a number or its text) as an int when whole, else a float: the one number rule of
    `number_problem`, for values known only once rendered. ValueError(problem) when it breaks it."""
    problem = number_problem(value, integer=integer, positive=positive, maximum=maximum)
    if problem is None and is_template(value):
        problem = f"must be {'a whole number' if integer else 'a number'}, got {str(value)[:100]!r}"
    if problem:
        raise ValueError(problem)
    number = float(value.strip()) if isinstance(value, str) else value
    return int(number) if float(number).is_integer() else float(number)


def suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else ""


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = lazy_re(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def duration(value: Any) -> float:
    """Seconds from a number or a Prometheus-style duration ("1h30m", "500ms")."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f'not a duration: {value!r} (write seconds, or "30s", "5m", "1h30m")')
    return sum(float(n) * _UNITS[u] for n, u in parts)
