"""Cross-check an audit directory against the PostgreSQL sink's append-only table.

The table is team-wide: it holds the runs of many audit directories. The runs that belong to *this*
directory's chain are found by following the chain itself: a database run with the id of a run in
the directory, or one linked to such a run (its first ``prev`` is the other's final hash, either way,
transitively). 64 zeros (the start of every chain) links nothing. Then:

* a database run of this chain missing from the directory is a problem when a run of the directory
  comes before it (the newest runs deleted, a middle run deleted, the directory rolled back), and a
  warning when it only precedes them (older runs archived, which ``verify`` allows);
* a run in both: records in the database but not in the file, or with another hash, are problems;
  records in the file but not in the database are a warning (the sink was dropped, or the run was
  killed before its last batch);
* a database row whose ``record`` does not hash to its ``hash`` column, or disagrees with its other
  columns, is a problem (the database copy was altered by someone allowed to bypass the triggers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runbook.audit.chain import parse_line
from runbook.audit.records import GENESIS
from runbook.audit.safeio import MAX_RUN_FILE, UnsafeFile, bounded_lines, open_regular


@dataclass
class DbRun:
    """One run as the table holds it (a summary; per-record hashes only for runs compared)."""

    run_id: str
    count: int
    first_seq: int
    last_seq: int
    first_prev: str | None  # prev of seq 1 (None if seq 1 is not in the table)
    final_hash: str
    hashes: dict[int, str] = field(default_factory=dict)
    bad_rows: list[str] = field(default_factory=list)


class DbSource(Protocol):
    """What the cross-check reads from the database (``sinks.postgres.AuditTable`` fits)."""

    label: str

    def runs(self) -> list[DbRun]: ...

    def load_records(self, runs: Sequence[DbRun]) -> None: ...


class FileRun(Protocol):
    """What the cross-check needs of a verified run file (``verify.RunReport`` fits)."""

    name: str
    run_id: str | None
    first_prev: str | None
    final_hash: str | None
    label: str


@dataclass
class CrossCheck:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _span(seqs: Sequence[int]) -> str:
    """``records 4-6`` / ``record 4`` / ``records 4, 7, 9`` (a short description of seq numbers)."""
    seqs = sorted(seqs)
    if len(seqs) == 1:
        return f"record {seqs[0]}"
    if seqs[-1] - seqs[0] + 1 == len(seqs):
        return f"records {seqs[0]}-{seqs[-1]}"
    shown = ", ".join(str(s) for s in seqs[:5])
    return f"records {shown}{', ...' if len(seqs) > 5 else ''} ({len(seqs)} in all)"


def file_hashes(path: Path) -> dict[int, str]:
    """seq -> hash of every line of a run file that parses as a record (its first occurrence)."""
    out: dict[int, str] = {}
    try:
        with open_regular(path, "run file", MAX_RUN_FILE) as fh:
            for line in bounded_lines(fh):
                rec = parse_line(line.strip())
                if rec is None:
                    continue
                seq, h = rec.get("seq"), rec.get("hash")
                if type(seq) is int and isinstance(h, str):
                    out.setdefault(seq, h)
    except (OSError, UnsafeFile):
        pass  # verify reports the unreadable file itself
    return out


def cross_check(directory: str | os.PathLike[str], files: Sequence[FileRun], db: DbSource) -> CrossCheck:
    out = CrossCheck()
    db_runs = {r.run_id: r for r in db.runs()}
    file_runs = {r.run_id: r for r in files if r.run_id is not None}
    finals: dict[str, str] = {}
    firsts: dict[str, set[str]] = {}
    for rid, fr in file_runs.items():
        if fr.final_hash:
            finals.setdefault(fr.final_hash, rid)
        if fr.first_prev:
            firsts.setdefault(rid, set()).add(fr.first_prev)
    for rid, dr in db_runs.items():
        finals.setdefault(dr.final_hash, rid)
        if dr.first_prev:
            firsts.setdefault(rid, set()).add(dr.first_prev)
    succ: dict[str, set[str]] = {}
    pred: dict[str, set[str]] = {}
    for rid, prevs in firsts.items():
        for h in prevs:
            before = finals.get(h) if h != GENESIS else None
            if before is not None and before != rid:
                pred.setdefault(rid, set()).add(before)
                succ.setdefault(before, set()).add(rid)
    after_files = _reach(file_runs, succ)  # runs a run of the directory comes before (or is)
    chain = _reach(file_runs, succ, pred)
    mine = [dr for rid, dr in db_runs.items() if rid in chain]
    others = len(db_runs) - len(mine)
    both = [dr for dr in mine if dr.run_id in file_runs]
    db.load_records(both)
    for dr in mine:
        if dr.run_id in file_runs:
            continue
        after = sorted(pred.get(dr.run_id, ()))
        where = f" (it follows run {', '.join(after)})" if after else ""
        if dr.run_id in after_files:
            out.problems.append(
                f"run {dr.run_id} ({dr.count} records) is in the audit database {db.label} but missing from "
                f"the audit directory{where}: run file deleted, or the directory rolled back"
            )
        else:
            out.warnings.append(
                f"run {dr.run_id} ({dr.count} records) is in the audit database but not in the directory, "
                "whose chain starts after it (older runs archived?)"
            )
    missing_db = [fr.label for rid, fr in file_runs.items() if rid not in db_runs]
    if missing_db and mine:
        out.warnings.append(
            f"{len(missing_db)} run(s) of the directory are not in the audit database ({', '.join(missing_db[:5])}"
            f"{', ...' if len(missing_db) > 5 else ''}): written without the sink, or not by runbook"
        )
    for dr in both:
        _compare(Path(directory) / file_runs[dr.run_id].name, file_runs[dr.run_id], dr, out, db.label)
    checked = sum(dr.count for dr in mine)
    out.notes.append(
        f"cross-checked against the audit database {db.label}: {len(mine)} run(s), {checked} record(s) of "
        f"this chain" + (f"; {others} run(s) of other audit chains there not compared" if others else "")
    )
    return out


def _reach(start: Iterable[str], *edges: Mapping[str, set[str]]) -> set[str]:
    seen = set(start)
    todo = list(seen)
    while todo:
        rid = todo.pop()
        for e in edges:
            for nxt in e.get(rid, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
    return seen


def _compare(path: Path, fr: FileRun, dr: DbRun, out: CrossCheck, label: str) -> None:
    for bad in dr.bad_rows:
        out.problems.append(f"run {dr.run_id}: database row {bad} (the database copy was altered)")
    have = file_hashes(path)
    only_db = [s for s in dr.hashes if s not in have]
    differ = [s for s, h in dr.hashes.items() if s in have and have[s] != h]
    only_file = [s for s in have if s not in dr.hashes]
    if only_db:
        cut = min(only_db) > max(have, default=0)
        why = "the file was cut short (newest records deleted)" if cut else "records deleted from the file"
        out.problems.append(
            f"run {fr.label}: {_span(only_db)} in the audit database {label} but missing from the run file ({why})"
        )
    if differ:
        out.problems.append(
            f"run {fr.label}: {_span(differ)} differ from the audit database's copy (the run file was altered)"
        )
    if only_file:
        out.warnings.append(
            f"run {fr.label}: {_span(only_file)} of the run file are not in the audit database (the sink was "
            "dropped, or the run killed before its last batch reached it)"
        )
