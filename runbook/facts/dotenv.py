"""dotenv files (.env) as Docker Compose and python-dotenv read them.

    # comment
    export KEY=value          # 'export ' prefix allowed; inline comments need a space before '#'
    URL=postgres://u:p@h/db?x=1   # '=' inside values is kept
    QUOTED="line1\\nline2"     # double quotes: escapes \\n \\t \\" \\\\ ; may span lines
    RAW='no $escapes here'    # single quotes: literal, may span lines
    BARE                      # a key with no value (None)

Errors carry a line number and a reason, never the line's text: values are secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runbook.model.lazyre import lazy_re

_KEY = lazy_re(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


@dataclass
class DotEnv:
    values: dict[str, str | None] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # key -> line number of its (last) definition
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def _find_close(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and quote == '"':
            i += 2
            continue
        if ch == quote:
            return i
        i += 1
    return -1


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), value, flags=re.DOTALL)


def parse_dotenv(text: str) -> DotEnv:
    env = DotEnv()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno, line = i + 1, lines[i]
        i += 1
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith(("export ", "export\t")):
            s = s[7:].lstrip()
        key, eq, rest = s.partition("=")
        key = key.strip()
        if not _KEY.fullmatch(key):
            env.errors.append((lineno, "not KEY=VALUE" if not eq else "invalid variable name"))
            continue
        if not eq:
            env.values[key], env.lines[key] = None, lineno
            continue
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote, body = rest[0], rest[1:]
            end = _find_close(body, quote)
            while end < 0 and i < len(lines):
                body += "\n" + lines[i]
                i += 1
                end = _find_close(body, quote)
            if end < 0:
                env.errors.append((lineno, f"unterminated {quote} quote"))
                continue
            tail = body[end + 1 :].strip()
            if tail and not tail.startswith("#"):
                env.errors.append((lineno, "unexpected text after the closing quote"))
                continue
            value = body[:end]
            env.values[key] = _unescape(value) if quote == '"' else value
        else:
            m = re.search(r"\s#", rest)
            env.values[key] = (rest[: m.start()] if m else rest).strip()
        env.lines[key] = lineno
    return env
