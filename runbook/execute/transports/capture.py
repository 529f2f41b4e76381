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
from collections import deque
from collections.abc import Callable
from typing import Any

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
        # the tail as the chunks received (no copy per chunk): the newest ones holding at least
        # _tail_keep bytes, joined only when asked (``_tail``)
        self._chunks: deque[bytes] = deque()
        self._held = 0  # bytes in _chunks
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
            if len(data) <= room:
                return
            data = data[room:]
        chunks = self._chunks
        chunks.append(bytes(data))
        self._held += len(data)
        # drop the oldest chunks the tail no longer needs (it keeps at least _tail_keep bytes)
        while self._held - len(chunks[0]) >= self._tail_keep:
            self._held -= len(chunks.popleft())

    @property
    def _tail(self) -> bytes:
        """The last _tail_keep bytes (or fewer: all there were past the head)."""
        if len(self._chunks) > 1:
            joined = b"".join(self._chunks)
            self._chunks.clear()
            self._chunks.append(joined)
        tail = self._chunks[0] if self._chunks else b""
        return tail[-self._tail_keep :] if len(tail) > self._tail_keep else tail

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


class JoinedCapture:
    """The outputs of many commands taken as one stream (a loop step's items, joined): the whole
    stream's size and sha256, and at most ``limit`` bytes of it kept, the head from the first items
    and the tail from the last ones, so memory and the registered value stay bounded whatever the
    number of items. Each item keeps what of it falls in the head or the tail, with a marker for
    the rest (an item entirely in the middle is only its marker): ``item(n)``, and ``changed()``
    says which items were cut since it was last asked; ``text()`` is them joined, one marker for
    each run of cut bytes. A cut never leaves part of a secret (the same rule as ``Capture``)."""

    def __init__(self, limit: int, redact: Callable[[str], str] | None = None):
        self.limit = limit
        self.redact = redact or (lambda s: s)
        self.total = 0
        self._sha = hashlib.sha256()
        self._head_room = limit // 2
        self._tail_room = limit - limit // 2
        # per item: [head kept, tail kept (the part past the head, trimmed from its start), size]
        self._items: list[list[Any]] = []
        self._tail_bytes = 0  # bytes held in the items' tail parts
        self._changed: set[int] = set()  # items cut since changed() was last asked
        self._first_tail = 0  # the first item that may still hold a tail part

    def add(self, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        self.total += len(data)
        self._sha.update(data)
        head = ""
        if self._head_room > 0 and text:
            if len(data) <= self._head_room:
                head, text = text, ""
            else:
                head = self._cut_head(text, self._head_room)
                text = text[len(head) :]
            self._head_room -= len(head.encode("utf-8", "surrogateescape"))
        self._items.append([head, text, len(data)])
        self._tail_bytes += len(text.encode("utf-8", "surrogateescape"))
        if self._tail_bytes > 2 * self._tail_room + LOOK:  # amortised: trim once it doubled
            self._trim()

    def _cut_head(self, text: str, room: int) -> str:
        head = text.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
        look = text[len(head) : len(head) + LOOK]
        return _common_prefix(self.redact(head), self.redact(head + look))

    def _trim(self) -> None:
        """Keep only the last ``tail_room`` bytes of the tail parts (from the last items back; the
        items before ``_first_tail`` hold no tail part any more)."""
        if self._tail_bytes <= self._tail_room:
            return
        room = self._tail_room
        n = len(self._items) - 1
        while n >= self._first_tail:
            item = self._items[n]
            tail = item[1]
            size = len(tail.encode("utf-8", "surrogateescape"))
            if size <= room:
                room -= size
                n -= 1
                continue
            self._changed.add(n)
            if room > 0:
                raw = tail.encode("utf-8", "surrogateescape")
                kept = raw[len(raw) - room :].decode("utf-8", "ignore")
                look = tail[max(0, len(tail) - len(kept) - LOOK) : len(tail) - len(kept)]
                item[1] = _common_suffix(self.redact(kept), self.redact(look + kept))
                room -= len(item[1].encode("utf-8", "surrogateescape"))
            else:
                item[1] = ""
            n -= 1
            break
        first = n + 1  # the items from here on keep their tail parts
        while n >= self._first_tail:  # before the cut: nothing of their tail parts is kept
            if self._items[n][1]:
                self._items[n][1] = ""
                self._changed.add(n)
            n -= 1
        self._first_tail = first
        self._tail_bytes = self._tail_room - room

    @property
    def elided(self) -> bool:
        return self.total > self.limit

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def item(self, n: int) -> str:
        """Item ``n`` as kept: whole, or its kept head and tail around a marker of what was cut."""
        head, tail, size = self._items[n]
        kept = len(head.encode("utf-8", "surrogateescape")) + len(tail.encode("utf-8", "surrogateescape"))
        return head + tail if kept >= size else head + marker(size - kept).strip("\n") + tail

    def changed(self, final: bool = False) -> list[int]:
        """The items cut since the last call (what holds their output must take ``item(n)``);
        ``final``: the last items are in, cut to the limit exactly first."""
        if final:
            self._trim()
        out, self._changed = sorted(self._changed), set()
        return out

    def text(self) -> str:
        """The items joined, one marker for each run of cut bytes (however many items it spans)."""
        self._trim()
        out: list[str] = []
        cut = 0
        for head, tail, size in self._items:
            kept_head = len(head.encode("utf-8", "surrogateescape"))
            kept_tail = len(tail.encode("utf-8", "surrogateescape"))
            out.append(head)
            cut += size - kept_head - kept_tail
            if tail:
                if cut:
                    out.append(marker(cut))
                    cut = 0
                out.append(tail)
        if cut:
            out.append(marker(cut))
        return "".join(out)

    def summary(self) -> dict[str, object] | None:
        """For a step's ``elided`` record: the whole stream's size, the bytes kept, its sha256."""
        return {"bytes": self.total, "kept": self.limit, "sha256": self.sha256} if self.elided else None
