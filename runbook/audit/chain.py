"""The hash chain: how a record's ``hash`` is computed, and where a directory's chain ends.

``hash`` = SHA-256 (lowercase hex) of the canonical JSON bytes of the record *without* its ``hash``
member. ``prev`` = the previous record's ``hash``; the first record of a run links to the final
record of the previous run in the same directory (64 zeros for the first run ever). The line
written to disk is the canonical JSON of the whole record (including ``hash``) plus ``\\n``.

Run files are named ``<UTC start, %Y%m%dT%H%M%S.%fZ>_<run id>.jsonl``; runs are ordered by name.
A run's *final hash* is the hash of its last self-consistent record (the last line that parses and
whose hash matches its content) -- for a run cut off by SIGKILL that is the last record written
whole, so the next run chains to it and verification of later runs is unaffected.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runbook.audit.canonical import dumps, encode

_PLACEHOLDER = "#" * 64
_PH_MEMBER = f',"hash":"{_PLACEHOLDER}"'
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_TS = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)_")
TS_FORMAT = "%Y%m%dT%H%M%S.%fZ"


def seal_line(body: dict[str, Any]) -> tuple[str, bytes]:
    """Hash a normalised record body (no ``hash`` key); return (hash, canonical line with newline).

    Top-level keys sorting after "hash" never hold objects with a "hash" member, and inside JSON
    strings ``"`` is always escaped, so the last ``,"hash":"..."`` in the text is the top-level one.
    """
    body["hash"] = _PLACEHOLDER
    try:
        text = dumps(body)
    finally:
        del body["hash"]
    i = text.rindex(_PH_MEMBER)
    head, tail = text[:i], text[i + len(_PH_MEMBER) :]
    digest = hashlib.sha256(encode(head + tail)).hexdigest()
    return digest, encode(f'{head},"hash":"{digest}"{tail}\n')


def record_hash(rec: dict[str, Any]) -> str:
    """Recompute a parsed record's hash from its content (slow path: re-canonicalise)."""
    body = {k: v for k, v in rec.items() if k != "hash"}
    return hashlib.sha256(encode(dumps(body))).hexdigest()


def check_line(raw: bytes, rec: dict[str, Any]) -> str:
    """The hash a parsed line's content actually has (compare with ``rec["hash"]``).

    Fast path: a line written canonically hashes to its own bytes minus the hash member; otherwise
    (reformatted by a tool, read back from PostgreSQL) fall back to re-canonicalising.
    """
    stored = rec.get("hash")
    if isinstance(stored, str):
        needle = b',"hash":"' + stored.encode("utf-8", "replace") + b'"'
        i = raw.rfind(needle)
        if i >= 0:
            digest = hashlib.sha256(raw[:i] + raw[i + len(needle) :]).hexdigest()
            if digest == stored:
                return digest
    try:
        return record_hash(rec)
    except (TypeError, ValueError):
        return ""


def parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None


@dataclass(frozen=True)
class ChainTail:
    """The last valid record of a run file: what the next run links to."""

    run_id: str
    seq: int
    hash: str
    path: str


def run_filename(started: datetime, run_id: str) -> str:
    safe = _UNSAFE.sub("_", run_id).strip("._") or "run"
    return f"{started.strftime(TS_FORMAT)}_{safe[:80]}.jsonl"


def name_ts(name: str) -> str | None:
    m = _NAME_TS.match(name)
    return m.group(1) if m else None


def list_runs(directory: str | os.PathLike[str]) -> list[Path]:
    """Run files of a directory, in chain order (by name: start time, then run id)."""
    d = Path(directory)
    try:
        entries = [p for p in d.iterdir() if p.suffix == ".jsonl" and p.is_file()]
    except FileNotFoundError:
        return []
    return sorted(entries, key=lambda p: p.name)


def last_valid(path: str | os.PathLike[str], chunk: int = 1 << 16) -> ChainTail | None:
    """Scan a run file from its end for the last self-consistent record."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            size = min(end, chunk)
            while True:
                fh.seek(end - size)
                data = fh.read(size)
                lines = data.split(b"\n")
                if size < end:
                    lines = lines[1:]  # the first piece may be a partial line
                for raw in reversed(lines):
                    tail = _tail_of(raw, str(path))
                    if tail is not None:
                        return tail
                if size >= end:
                    return None
                size = min(end, size * 4)
    except OSError:
        return None


def _tail_of(raw: bytes, path: str) -> ChainTail | None:
    raw = raw.strip()
    if not raw:
        return None
    rec = parse_line(raw)
    if rec is None:
        return None
    seq, h, run_id = rec.get("seq"), rec.get("hash"), rec.get("run_id")
    if type(seq) is not int or not isinstance(h, str) or not isinstance(run_id, str):
        return None
    if check_line(raw, rec) != h:
        return None
    return ChainTail(run_id, seq, h, path)


def chain_tail(directory: str | os.PathLike[str], exclude: Path | None = None) -> ChainTail | None:
    """Where the directory's chain ends: the last valid record of the latest run that has one."""
    for path in reversed(list_runs(directory)):
        if exclude is not None and path == exclude:
            continue
        tail = last_valid(path)
        if tail is not None:
            return tail
    return None
