"""Verify audit runs: record hashes, seq order, chain links, seals and signatures, and the chain
across runs. Never raises on bad input: garbage, partial lines and empty files become problems.

Messages name exactly what is wrong, e.g. ``run R: record 17 altered (hash mismatch)``,
``run R: record 17 missing (seq jumps 16 -> 18)``, ``run R: records 17 and 18 reordered``,
``run R: seal at record 40 signed by untrusted key ed25519:SHA256:...``,
``run R truncated after record 23 (no final seal)``, ``run missing between A and B (...)``,
``run R is unsigned, but it follows signed run Q (...)`` (a downgrade: even with --allow-unsigned).
Every file is read through ``safeio`` (regular files of bounded size, bounded lines). What the chain
cannot show -- its newest runs missing -- is ``head``'s and ``crosscheck``'s to find.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runbook.audit.canonical import noncanonical_reason
from runbook.audit.chain import cross_run_problems, line_status, list_runs
from runbook.audit.keys import AllowedSigners
from runbook.audit.records import GENESIS, seal_payload
from runbook.audit.safeio import MAX_LINE, MAX_RUN_FILE, LineTooLong, UnsafeFile, bounded_lines, open_regular


def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = {"seq": int, "hash": str, "prev": str, "event": str, "run_id": str}


@dataclass
class RunReport:
    name: str
    run_id: str | None = None
    records: int = 0
    seals: int = 0
    key_id: str | None = None
    signer: str | None = None
    outcome: str | None = None
    last_seq: int = 0
    final: bool = False
    first_prev: str | None = None
    prev_run_id: str | None = None
    final_hash: str | None = None
    unsigned: bool = False  # its first record was read: no signer, and no seal carries a signature
    final_seal: dict[str, Any] | None = None  # the final seal record (what a head is made of)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        return self.run_id or self.name


@dataclass
class Report:
    runs: list[RunReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    heads: list[dict[str, Any]] = field(default_factory=list)  # expected heads checked (head.apply_heads)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.runs)

    @property
    def records(self) -> int:
        return sum(r.records for r in self.runs)

    def all_problems(self) -> list[str]:
        return [p for r in self.runs for p in r.problems] + self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "runs": [
                {**{k: v for k, v in asdict(r).items() if k != "final_seal"}, "ok": r.ok} for r in self.runs
            ],
            "records": self.records,
            "problems": self.all_problems(),
            "warnings": self.warnings,
            "heads": self.heads,
            "notes": self.notes,
        }


@dataclass
class _Entry:
    lineno: int
    rec: dict[str, Any]
    seq: int
    hash: str
    computed: str
    canonical: bool
    line: bytes

    @property
    def intact(self) -> bool:
        return self.computed == self.hash


class _RunVerifier:
    def __init__(self, name: str, lines: Iterable[bytes], trust: AllowedSigners | None, allow_unsigned: bool):
        self.r = RunReport(name)
        self.lines = lines
        self.trust = trust
        self.allow_unsigned = allow_unsigned
        self.partial = False
        self.final_at: int | None = None
        self.sealed_upto = 0
        self.untrusted: list[int] = []
        self.signed_seals = 0
        self.last: _Entry | None = None

    def problem(self, msg: str) -> None:
        self.r.problems.append(f"run {self.r.label}: {msg}")

    def run(self) -> RunReport:
        self._walk(self._entries())
        r = self.r
        if self.last is None:
            if self.partial:
                r.problems.append(f"run file {r.name} holds no complete record (write interrupted)")
            elif not r.problems:
                r.problems.append(f"run file {r.name} is empty (no records)")
            return r
        self._finish(self.last)
        return r

    def _entries(self) -> Iterator[_Entry]:
        r = self.r
        lineno = 0
        for line in self.lines:
            lineno += 1
            if isinstance(line, LineTooLong):
                r.problems.append(
                    f"run file {r.name}: line {lineno} is longer than {MAX_LINE >> 20} MiB: not an audit "
                    "record (skipped unread)"
                )
                continue
            raw = line.strip()
            if not raw:
                r.problems.append(f"run file {r.name}: line {lineno} is blank")
                continue
            try:
                rec = _decode(raw.decode("utf-8"))
            except (ValueError, RecursionError):
                rec = None
            if not isinstance(rec, dict):
                if not line.endswith(b"\n"):
                    self.partial = True  # the last line, cut off: reported with the truncation
                else:
                    r.problems.append(
                        f"run file {r.name}: line {lineno} is not a valid JSON record (corrupted)"
                    )
                continue
            shape = _shape(rec)
            if shape:
                r.problems.append(f"run file {r.name}: line {lineno} is not an audit record ({shape})")
                continue
            if r.run_id is None:
                r.run_id = rec["run_id"]
            computed, canonical = line_status(raw, rec)
            e = _Entry(
                lineno,
                rec,
                rec["seq"],
                rec["hash"],
                computed,
                canonical and len(line) == len(raw) + 1 and line[-1] == 10,
                line,
            )
            self.last = e
            if e.computed == e.hash:
                r.final_hash = e.hash
            yield e

    def _walk(self, entries: Iterator[_Entry]) -> None:
        r = self.r
        prev: _Entry | None = None
        expected = 1
        seen: set[int] = set()
        e = next(entries, None)
        while e is not None:
            nxt = next(entries, None)
            self._check_record(e)
            if e.seq == expected:
                self._link(prev, e, expected)
                self._seal(e)
            elif e.seq == expected + 1 and nxt is not None and nxt.seq == expected:
                self.problem(f"records {expected} and {expected + 1} reordered")
                a, nxt = nxt, next(entries, None)
                self._check_record(a)
                self._link(prev, a, expected)
                self._link(a, e, expected + 1)
                self._seal(a)
                self._seal(e)
                seen.add(a.seq)
                r.records += 1
            elif e.seq > expected:
                what = f"record {expected}" if e.seq == expected + 1 else f"records {expected}-{e.seq - 1}"
                jump = (
                    f"seq jumps {expected - 1} -> {e.seq}"
                    if prev is not None
                    else f"run starts at record {e.seq}"
                )
                self.problem(f"{what} missing ({jump})")
                self._seal(e)
            else:
                kind = "duplicated" if e.seq in seen else "out of order"
                self.problem(f"record {e.seq} {kind} (found after record {expected - 1})")
                seen.add(e.seq)
                e = nxt
                continue
            prev, expected = e, e.seq + 1
            seen.add(e.seq)
            r.records += 1
            if e.rec["event"] == "run.end":
                r.outcome = str(e.rec.get("outcome"))
            e = nxt
        r.last_seq = prev.seq if prev is not None else 0

    def _check_record(self, e: _Entry) -> None:
        if e.rec["run_id"] != self.r.run_id:
            self.problem(f"record {e.seq} (line {e.lineno}) belongs to another run ({e.rec['run_id']})")
        which = f"record {e.seq}" if e.lineno == e.seq else f"record {e.seq} (line {e.lineno})"
        if not _HEX64.fullmatch(e.hash):
            self.problem(f"{which} altered (its hash is not a SHA-256 hex digest)")
        elif not e.intact:
            self.problem(f"{which} altered (hash mismatch)")
        elif not e.canonical:
            why = noncanonical_reason(e.line) or "the hash member is out of place"
            if why.startswith("no newline"):
                self.problem(f"{which}: line cut off before its newline (file truncated?)")
            else:
                self.problem(f"{which} altered (not in canonical form: {why})")
        if self.final_at is not None and e.seq > self.final_at:
            self.problem(f"record {e.seq} follows the final seal (record {self.final_at})")
        if e.seq == 1:
            self._first(e)

    def _first(self, e: _Entry) -> None:
        r, rec = self.r, e.rec
        r.first_prev = rec["prev"]
        r.key_id = rec.get("key_id") if isinstance(rec.get("key_id"), str) else None
        prev_run = rec.get("prev_run")
        if isinstance(prev_run, dict):
            r.prev_run_id = str(prev_run.get("run_id"))
            if prev_run.get("final_hash") != rec["prev"]:
                self.problem("record 1: prev_run.final_hash does not match prev")
        elif rec["prev"] != GENESIS:
            self.problem("record 1 links to an earlier run but does not name it (prev_run missing)")

    def _link(self, prev: _Entry | None, e: _Entry, seq: int) -> None:
        if prev is not None and e.rec["prev"] not in (prev.hash, prev.computed):
            self.problem(f"record {seq}: chain broken (prev does not match record {prev.seq}'s hash)")

    def _seal(self, e: _Entry) -> None:
        rec = e.rec
        if rec["event"] != "seal":
            return
        r = self.r
        r.seals += 1
        final = rec.get("final") is True
        if rec.get("head") != rec["prev"]:
            self.problem(f"seal at record {e.seq}: head does not match the previous record's hash")
        kid, sig = rec.get("key_id"), rec.get("sig")
        if final:
            if self.final_at is not None:
                self.problem(f"second final seal at record {e.seq} (first at record {self.final_at})")
            else:
                r.final_seal = rec
            self.final_at = e.seq
        if kid is not None or sig is not None:
            self.signed_seals += 1
        if kid is None and sig is None:
            if r.key_id is not None:
                self.problem(f"seal at record {e.seq} is unsigned, but the run names signer {r.key_id}")
            elif final:
                self.sealed_upto = e.seq
            return
        if not isinstance(kid, str) or not isinstance(sig, str):
            self.problem(f"seal at record {e.seq}: malformed signature fields")
            return
        if kid != r.key_id:
            self.problem(f"seal at record {e.seq}: key {kid} is not the run's signer ({r.key_id})")
        if self.trust is None:
            return
        trusted = self.trust.get(kid)
        if trusted is None:
            self.untrusted.append(e.seq)
            if len(self.untrusted) == 1:
                self.problem(f"seal at record {e.seq} signed by untrusted key {kid}")
            return
        payload = seal_payload(str(rec["run_id"]), e.seq, str(rec.get("head")), final)
        if not trusted.verify(sig, payload):
            self.problem(f"seal at record {e.seq}: bad signature")
            return
        r.signer = ",".join(trusted.principals) or None
        self.sealed_upto = e.seq

    def _finish(self, last: _Entry) -> None:
        r = self.r
        if r.run_id is not None:
            r.problems = [p.replace(f"run file {r.name}:", f"run {r.run_id}:") for p in r.problems]
        if len(self.untrusted) > 1:
            self.problem(f"{len(self.untrusted) - 1} more seal(s) signed by untrusted key {r.key_id}")
        r.final = self.final_at is not None and last.seq == self.final_at and last.rec["event"] == "seal"
        if self.final_at is None:
            extra = "; last line is partial (write interrupted)" if self.partial else ""
            cover = f"; records 1-{self.sealed_upto} are covered by a valid seal" if self.sealed_upto else ""
            r.problems.append(
                f"run {r.label} truncated after record {r.last_seq} (no final seal{extra}){cover}"
            )
        elif self.partial:
            self.problem("a partial line follows the final seal")
        r.unsigned = r.first_prev is not None and r.key_id is None and not self.signed_seals
        if r.key_id is None:
            if self.allow_unsigned:
                r.notes.append("unsigned (allowed by --allow-unsigned)")
            else:
                self.problem("unsigned (no signing key was configured when it was written)")
        elif self.trust is None:
            self.problem(f"signed by {r.key_id}, but no allowed signers were given to check it")
        if r.outcome == "interrupted":
            r.notes.append("the run was interrupted (sealed on the way out)")


def _shape(rec: dict[str, Any]) -> str:
    """What makes a parsed JSON object not an audit record ("" if nothing)."""
    g = rec.get
    fields = (g("hash"), g("prev"), g("event"), g("run_id"))
    if type(g("seq")) is int and rec["seq"] >= 1 and all(type(f) is str for f in fields):
        return ""  # the common case, quickly
    missing = [k for k in _REQUIRED if k not in rec]
    if missing:
        return "missing seq/hash/prev/event/run_id"
    for key, want in _REQUIRED.items():
        if type(rec[key]) is not want:
            got = type(rec[key]).__name__.replace("str", "string").replace("NoneType", "null")
            return f"{key} must be {'an integer' if want is int else 'a string'}, not {got}"
    if rec["seq"] < 1:
        return f"seq {rec['seq']} is not a positive number"
    return ""


def verify_run_bytes(
    name: str, data: bytes, trust: AllowedSigners | None, allow_unsigned: bool = False
) -> RunReport:
    return _RunVerifier(name, bounded_lines(io.BytesIO(data)), trust, allow_unsigned).run()


def verify_chain(runs: list[RunReport], report: Report, *, complete: bool = True, named: bool = True) -> None:
    """Check the chain across runs (in order): links, order, duplicates, file names, downgrades."""
    problems, warnings = cross_run_problems(runs, complete=complete, named=named)
    report.problems.extend(problems)
    report.warnings.extend(warnings)
    _downgrades(runs)


def _downgrades(runs: list[RunReport]) -> None:
    """A signed chain never goes on unsigned: an unsigned run after a signed one is a problem even with
    --allow-unsigned, which only admits unsigned runs before the first signed one (runs written
    before the operator created a key). Otherwise anyone could append a fabricated run, or strip the
    signatures off the newest one, without the key."""
    last_signed: RunReport | None = None
    for r in runs:
        if r.unsigned and last_signed is not None:
            r.notes = [n for n in r.notes if "--allow-unsigned" not in n]
            r.problems.append(
                f"run {r.label} is unsigned, but it follows signed run {last_signed.label} ({last_signed.key_id}): "
                "a downgrade from signed to unsigned (run fabricated without the key, or its signatures "
                "stripped); --allow-unsigned does not admit it"
            )
        elif r.key_id is not None:
            last_signed = r


def verify_directory(
    directory: str | os.PathLike[str], trust: AllowedSigners | None, allow_unsigned: bool = False
) -> Report:
    report = Report()
    files = list_runs(directory)
    if not files:
        report.problems.append(f"no audit runs (*.jsonl) found in {directory}")
        return report
    for path in files:
        report.runs.append(_verify_file(path, trust, allow_unsigned))
    verify_chain(report.runs, report)
    return report


def verify_runs(
    runs: list[tuple[str, bytes]],
    trust: AllowedSigners | None,
    allow_unsigned: bool = False,
    *,
    complete: bool,
) -> Report:
    report = Report()
    for name, data in runs:
        report.runs.append(verify_run_bytes(name, data, trust, allow_unsigned))
    verify_chain(report.runs, report, complete=complete)
    return report


def _verify_file(path: Path, trust: AllowedSigners | None, allow_unsigned: bool) -> RunReport:
    try:
        with open_regular(path, f"run file {path.name}", MAX_RUN_FILE) as fh:
            return _RunVerifier(path.name, bounded_lines(fh), trust, allow_unsigned).run()
    except UnsafeFile as exc:
        r = RunReport(path.name)
        r.problems.append(f"{exc.message} (not read)")
        return r
    except OSError as exc:
        r = RunReport(path.name)
        r.problems.append(f"run file {path}: cannot read ({exc.strerror})")
        return r


def verify_file(
    path: str | os.PathLike[str], trust: AllowedSigners | None, allow_unsigned: bool = False
) -> Report:
    """One run file: its own chain and seals (the link to the previous run cannot be checked)."""
    p = Path(path)
    report = Report(runs=[_verify_file(p, trust, allow_unsigned)])
    r = report.runs[0]
    if r.first_prev not in (None, GENESIS):
        r.notes.append(f"links to run {r.prev_run_id} (verify the directory to check the cross-run chain)")
    return report
