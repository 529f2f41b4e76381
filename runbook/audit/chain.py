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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from runbook.audit.canonical import dumps, encode
from runbook.audit.records import GENESIS  # the ``prev`` of the first run ever
from runbook.audit.safeio import MAX_LINE, MAX_RUN_FILE, UnsafeFile, open_regular

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
    return line_status(raw, rec)[0]


def line_status(raw: bytes, rec: dict[str, Any]) -> tuple[str, bool]:
    """(hash of the content, whether ``raw`` is byte-for-byte the canonical line minus its newline).

    Canonical is only claimed on the fast path: ``raw`` minus the ``hash`` member hashes to the stored
    hash, and that member sits where sorted keys put it. If the stored hash is authentic (chained to a
    valid seal), those bytes are exactly what the writer hashed, i.e. canonical; any other encoding of
    the same content (escapes, whitespace, key order, duplicate keys) only matches on the slow path.
    """
    stored = rec.get("hash")
    if isinstance(stored, str):
        needle = b',"hash":"' + stored.encode("utf-8", "replace") + b'"'
        i = raw.rfind(needle)
        if i >= 0:
            digest = hashlib.sha256(raw[:i] + raw[i + len(needle) :]).hexdigest()
            if digest == stored:
                return digest, _hash_in_place(raw, i + len(needle), rec)
    try:
        return record_hash(rec), False
    except (TypeError, ValueError, RecursionError):
        return "", False


def _hash_in_place(raw: bytes, end: int, rec: dict[str, Any]) -> bool:
    """Whether the top-level ``hash`` member ending at ``end`` is followed by the next key in sort order."""
    after = min((k for k in rec if k > "hash"), default=None)
    if after is None:
        return raw.startswith(b"}", end)
    return raw.startswith(_member_start(after), end)


_MEMBER_START: dict[str, bytes] = {}


def _member_start(key: str) -> bytes:
    start = _MEMBER_START.get(key)
    if start is None:
        start = encode("," + dumps(key) + ":")
        if len(_MEMBER_START) < 1024:
            _MEMBER_START[key] = start
    return start


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
    return f"{started.strftime(TS_FORMAT)}_{run_name_part(run_id)}.jsonl"


def run_name_part(run_id: str) -> str:
    """The run id as it appears in its file name (unsafe characters replaced, at most 80)."""
    safe = _UNSAFE.sub("_", run_id).strip("._") or "run"
    return safe[:80]


def named_after(name: str, run_id: str) -> bool:
    """Whether a run file name is what the writer names a file for ``run_id``."""
    return (
        name_ts(name) is not None
        and name[len("YYYYmmddTHHMMSS.ffffffZ_") :] == f"{run_name_part(run_id)}.jsonl"
    )


def name_ts(name: str) -> str | None:
    m = _NAME_TS.match(name)
    return m.group(1) if m else None


def list_runs(directory: str | os.PathLike[str]) -> list[Path]:
    """Run files of a directory, in chain order (by name: start time, then run id). Every ``*.jsonl``
    entry counts, whatever it is (a FIFO or a directory named like a run is reported by ``verify``,
    refused by every reader, never silently skipped)."""
    d = Path(directory)
    try:
        entries = [p for p in d.iterdir() if p.suffix == ".jsonl"]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(entries, key=lambda p: p.name)


def last_valid(path: str | os.PathLike[str], chunk: int = 1 << 16) -> ChainTail | None:
    """Scan a run file from its end for the last self-consistent record (within its last
    ``MAX_LINE * 2`` bytes; None for anything that is not a readable regular run file)."""
    try:
        with open_regular(path, "run file", MAX_RUN_FILE) as fh:
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
                if size >= min(end, 2 * MAX_LINE):
                    return None
                size = min(end, size * 4, 2 * MAX_LINE)
    except (OSError, UnsafeFile):
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


class RunSummary(Protocol):
    """What the cross-run check needs of a verified run (``verify.RunReport`` fits)."""

    name: str
    run_id: str | None
    first_prev: str | None
    prev_run_id: str | None
    final_hash: str | None

    @property
    def label(self) -> str: ...


def cross_run_problems(
    runs: Sequence[RunSummary], *, complete: bool = True, named: bool = True
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the chain across ``runs`` (in file-name order): each run's first record
    must link to the final hash of the run before it. ``named``: file names are the writer's
    (``<start>_<run id>.jsonl``) and fix the order, so a renamed file is a problem too."""
    problems: list[str] = []
    warnings: list[str] = []
    by_id: dict[str, RunSummary] = {}
    for r in runs:
        if r.run_id is None:
            continue
        if r.run_id in by_id:
            problems.append(
                f"run {r.run_id} appears twice ({by_id[r.run_id].name} and {r.name}): a run file was copied "
                "over another or duplicated"
            )
        by_id.setdefault(r.run_id, r)
        if named and not named_after(r.name, r.run_id):
            problems.append(f"run file {r.name} is not named after its run {r.run_id} (renamed?)")
    position = {id(r): i for i, r in enumerate(runs)}
    by_final: dict[str, RunSummary] = {}
    for r in runs:
        if r.final_hash is not None:
            by_final.setdefault(r.final_hash, r)
    prev: RunSummary | None = None
    unreadable: list[RunSummary] = []  # runs since prev without a readable first record
    reordered: set[int] = set()
    for r in runs:
        if r.first_prev is None:
            if r.final_hash is None:
                unreadable.append(r)
            else:
                prev, unreadable = r, []
            continue
        target = by_final.get(r.first_prev)
        later = target is not None and position[id(target)] > position[id(r)]
        if prev is not None and r.first_prev == prev.final_hash:
            if r.prev_run_id is not None and r.prev_run_id != prev.run_id:
                problems.append(
                    f"run {r.label} names run {r.prev_run_id} as its predecessor, not {prev.label}"
                )
        elif later:
            assert target is not None
            reordered.update((id(r), id(target)))
            problems.append(
                f"runs out of order: run {r.label} follows run {target.label}, but its file sorts before it "
                "(run files renamed?)"
            )
        elif prev is not None and (prev.run_id == r.run_id or reordered & {id(prev), id(r), id(target)}):
            pass  # a duplicated run, or the other end of runs out of order: reported already
        elif unreadable:
            problems.append(
                f"cannot check the chain {'from run ' + prev.label + ' ' if prev else ''}to run {r.label}: "
                f"run file {unreadable[-1].name} before it has no readable records"
            )
        elif prev is None:
            if r.first_prev != GENESIS and complete:
                warnings.append(
                    f"the chain starts at run {r.label}, which follows run {r.prev_run_id or '?'} "
                    "(not present here: earlier runs archived or deleted?)"
                )
        elif target is not None and target is not r:
            problems.append(
                f"run {prev.label} is not part of the chain: run {r.label} links to run {target.label} "
                f"(run inserted or forged between {target.label} and {r.label}?)"
            )
        elif r.prev_run_id is not None and r.prev_run_id == prev.run_id:
            problems.append(
                f"run {prev.label} was altered after run {r.label} was written (chain broken: run {r.label}'s "
                f"prev_run hash does not match run {prev.label}'s final hash)"
            )
        else:
            problems.append(
                f"run missing between {prev.label} and {r.label} (chain broken: run {r.label}'s prev_run "
                f"hash does not match run {prev.label}'s final hash)"
            )
        if r.final_hash is not None:
            prev, unreadable = r, []
    return problems, warnings
