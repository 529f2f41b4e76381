"""Version strings as tools print them ("Docker version 20.10.24+dfsg1", "v2.0.0",
"psql (PostgreSQL) 15.18 (Debian 15.18-1.pgdg120+1)") -> comparable versions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from runbook.model.lazyre import lazy_re

_DOTTED = lazy_re(
    r"(?<![A-Za-z0-9.])[vV]?(?P<rel>\d+(?:\.\d+)+)(?:[-.~]?(?P<pre>(?:rc|alpha|beta|a|b|pre|dev)\.?\d*))?(?![\d])",
)
_BARE = lazy_re(r"(?<![A-Za-z0-9.])[vV]?(?P<rel>\d+)(?![\w.])")
_PRE_ORDER = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "pre": 3, "rc": 3}


@total_ordering
@dataclass(frozen=True)
class Version:
    release: tuple[int, ...]
    pre: tuple[int, int] | None = None  # (rank, number) for -rc1, a2, beta ...; None for a release
    text: str = ""

    def _key(self, width: int) -> tuple:
        rel = self.release + (0,) * (width - len(self.release))
        return (rel, (1, 0) if self.pre is None else (0, *self.pre))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        width = max(len(self.release), len(other.release))
        return self._key(width) == other._key(width)

    def __lt__(self, other: Version) -> bool:
        width = max(len(self.release), len(other.release))
        return self._key(width) < other._key(width)

    def __hash__(self) -> int:
        rel = list(self.release)
        while rel and rel[-1] == 0:
            rel.pop()
        return hash((tuple(rel), self.pre))

    def __str__(self) -> str:
        return self.text or ".".join(map(str, self.release))

    def within_max(self, maximum: Version) -> bool:
        """``self <= maximum`` where maximum counts as a prefix: max 15 admits 15.18, max 2.1 admits 2.1.9."""
        if maximum.pre is not None:
            return self <= maximum
        n = len(maximum.release)
        return (self.release + (0,) * n)[:n] <= maximum.release


def _pre(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.match(r"([a-z]+)\.?(\d*)", text.lower())
    if not m:
        return None
    return (_PRE_ORDER.get(m.group(1), 0), int(m.group(2) or 0))


def extract_version(text: str, regex: str | None = None) -> Version | None:
    """The first version in a tool's output (dotted versions win over bare numbers). With ``regex``,
    its first group (or whole match) is the version."""
    if regex:
        m = re.search(regex, text, re.MULTILINE)
        if not m:
            return None
        return parse_version(m.group(1) if m.groups() else m.group(0))
    return parse_version(text)


def parse_version(text: str) -> Version | None:
    """The first version in ``text``: "20.10", "v2.0.0", "2.0.0-rc1", "15.18 (Debian 15.18-1)"."""
    text = str(text).strip()
    m = _DOTTED.search(text) or _BARE.search(text)
    if not m:
        return None
    rel = tuple(int(p) for p in m["rel"].split("."))
    return Version(rel, _pre(m.groupdict().get("pre")), m.group(0).lstrip("vV"))
