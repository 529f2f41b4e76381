"""A command's output stream, kept in constant memory whatever it prints.

``Capture`` receives the stream chunk by chunk (from a local pipe or an SSH channel), hashes all of it
(sha256 while streaming) and keeps the first and the last ``limit // 2`` bytes. ``text()`` gives the
whole output when it fitted, else head + ``[… N bytes elided …]`` + tail.

Secrets and the cut: the head and the tail are cut from a longer window (``LOOK`` more bytes on the
inner side), and a cut never leaves part of a secret: the kept head is the longest common prefix of
``redact(head)`` and ``redact(head + lookahead)`` (a secret crossing the cut is masked in the second,
so the two differ right where it starts), likewise the tail with common suffixes. Elided text is
therefore already redacted; a later redaction over it changes nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

DEFAULT_LIMIT = 1 << 20  # bytes kept per stream (head + tail)
LOOK = 64 * 1024  # window beyond each cut, so a secret up to this long crossing a cut is still seen
ENV_LIMIT = "RUNBOOK_MAX_OUTPUT"


def parse_size(value: object) -> int:
    """``1048576``, ``512k``, ``1M``, ``2MiB``, ``1G`` -> bytes (ValueError if not a size >= 1 KiB)."""
    text = str(value).strip().lower().removesuffix("ib").removesuffix("b")
    mult = 1
    if text[-1:] in ("k", "m", "g"):
        mult = 1 << (10 * ("kmg".index(text[-1]) + 1))
        text = text[:-1]
    n = int(float(text) * mult)
    if n < 1024:
        raise ValueError(f"an output limit must be at least 1k, got {value!r}")
    return n


def default_limit() -> int:
    raw = os.environ.get(ENV_LIMIT)
    return parse_size(raw) if raw else DEFAULT_LIMIT


def marker(elided: int) -> str:
    return f"\n[… {elided} bytes elided …]\n"


class Capture:
    """One output stream: full sha256, byte count, and a bounded head and tail."""

    def __init__(self, limit: int | None = DEFAULT_LIMIT):
        self.limit = limit  # None: keep everything (file reads through commands)
        self.total = 0
        self._sha = hashlib.sha256()
        self._head = bytearray()
        self._tail = bytearray()
        half = (limit or 0) // 2
        self._head_cap = half + LOOK
        self._tail_keep = (limit or 0) - half + LOOK

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        self._sha.update(data)
        if self.limit is None:
            self._head += data
            return
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > 2 * self._tail_keep:  # amortised: trim once it doubled
                del self._tail[: len(self._tail) - self._tail_keep]

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def elided(self) -> bool:
        return self.limit is not None and self.total > self.limit

    def value(self) -> bytes:
        """Every byte when it fitted (or without a limit); else the head, marker and tail."""
        if not self.elided:
            return bytes(self._head) + bytes(self._tail)
        return self.text().encode()

    def text(self, redact: Callable[[str], str] | None = None) -> str:
        if not self.elided:
            return (bytes(self._head) + bytes(self._tail)).decode("utf-8", "replace")
        assert self.limit is not None
        red = redact or (lambda s: s)
        half = self.limit // 2
        tail_len = self.limit - half
        whole = bytes(self._head) + bytes(self._tail)  # head window, then tail window
        # the head window reaches into the tail window when the stream is only a little too long
        head, look_after = whole[:half], whole[half : half + LOOK]
        tail, look_before = whole[-tail_len:], whole[-tail_len - LOOK : -tail_len]
        head_text = _common_prefix(red(_dec(head)), red(_dec(head + look_after)))
        tail_text = _common_suffix(red(_dec(tail)), red(_dec(look_before + tail)))
        kept = len(head_text.encode()) + len(tail_text.encode())
        return head_text + marker(max(0, self.total - kept)) + tail_text


def _dec(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _common_prefix(a: str, b: str) -> str:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return a[:n]
    lo, hi = 0, n  # binary search on the first difference (strings are up to half a MiB)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return a[:lo]


def _common_suffix(a: str, b: str) -> str:
    return _common_prefix(a[::-1], b[::-1])[::-1]


def elided(**streams: Capture | None) -> dict[str, dict[str, object]] | None:
    """For CommandResult.elided: size, bytes kept and full sha256 of every stream that was cut."""
    out = {
        name: {"bytes": c.total, "kept": c.limit, "sha256": c.sha256}
        for name, c in streams.items()
        if c is not None and c.elided
    }
    return out or None
