"""The head of an audit chain: a pin kept outside the directory an attacker can rewrite.

Hashes and seals prove that what is in the audit directory is unaltered; they cannot prove that
nothing is *missing at the end*: deleting the newest run files, or putting back an older copy of the
whole directory, leaves a chain that verifies. The head closes that gap, like CloudTrail's digest
files: it names the newest run and its final seal, in one line an operator pastes into a change
ticket, a chat, a second machine::

    runbook-audit-head/1 run=<run id> records=<n> final=<hash> sealed=<hash> link=<hash> key=<key id> sig=<sig>

``run``, ``records``: the newest run and its record count (the final seal's ``seq``); ``final``: the
final seal's hash (what the next run links to); ``sealed``: the hash the seal signs (its ``head``);
``link``: the run's first ``prev`` (the final hash of the run before it, 64 zeros for the first run
of a chain); ``key``, ``sig``: the signer and the seal's Ed25519 signature (``-`` when unsigned), so a
head can be checked against the allowed signers on its own. The run id is percent-encoded.

``verify --expect-head HEAD`` fails unless the directory's chain contains the head's run, unaltered,
with exactly those records (it may go on after it). A *local head* file, written by the writer after
every final seal into ``$XDG_STATE_HOME/runbook/audit-heads/`` (outside the audit directory), is
checked the same way by default.

Threat model, honestly: the local head catches the newest runs deleted or the directory rolled back
by someone (or something: a restore, a sync tool) that can write the audit directory but not the
operator's state directory. Someone who can rewrite both is caught only by a head kept elsewhere
(``--expect-head`` from the ticket) or by the PostgreSQL sink (``verify --audit-dsn``), whose table
the writing role can only append to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote

from runbook.audit.chain import last_valid, list_runs, named_after
from runbook.audit.keys import AllowedSigners
from runbook.audit.records import GENESIS, seal_payload
from runbook.audit.safeio import MAX_SMALL, read_regular
from runbook.errors import AuditError, Location

HEAD_FORMAT = "runbook-audit-head/1"
HEADS_ENV = "RUNBOOK_AUDIT_HEADS"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("run", "records", "final", "sealed", "link", "key", "sig")


class HeadError(AuditError):
    """An expected head that cannot be read (a usage error, exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Head:
    run_id: str
    records: int
    final: str
    sealed: str
    link: str
    key_id: str | None = None
    sig: str | None = None

    def line(self) -> str:
        values = (
            quote(self.run_id, safe=""),
            str(self.records),
            self.final,
            self.sealed,
            self.link,
            self.key_id or "-",
            self.sig or "-",
        )
        return " ".join([HEAD_FORMAT, *(f"{k}={v}" for k, v in zip(_FIELDS, values, strict=True))])

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": HEAD_FORMAT,
            "run_id": self.run_id,
            "records": self.records,
            "final_hash": self.final,
            "sealed_hash": self.sealed,
            "prev_run_hash": self.link,
            "key_id": self.key_id,
            "signature": self.sig,
            "line": self.line(),
        }

    @classmethod
    def parse(cls, text: str, source: str = "--expect-head") -> Head:
        """A head line (or the JSON ``audit head --output json`` prints); HeadError if malformed."""
        text = text.strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise HeadError(f"not a readable audit head ({exc})", location=Location(source))
            if not isinstance(doc, dict) or not isinstance(doc.get("line"), str):
                raise HeadError('not an audit head (no "line" member)', location=Location(source))
            text = doc["line"]
        tokens = text.split()
        hint = f"paste the whole line `runbook audit head` printed ({HEAD_FORMAT} run=... sig=...)"
        if not tokens or tokens[0] != HEAD_FORMAT:
            raise HeadError(
                f"not an audit head (it must start with {HEAD_FORMAT})", location=Location(source), hint=hint
            )
        values: dict[str, str] = {}
        for tok in tokens[1:]:
            k, sep, v = tok.partition("=")
            if not sep or k not in _FIELDS or k in values:
                raise HeadError(
                    f"audit head: unexpected field {tok[:40]!r}", location=Location(source), hint=hint
                )
            values[k] = v
        missing = [k for k in _FIELDS if k not in values]
        if missing:
            raise HeadError(
                f"audit head: missing {', '.join(missing)} (line cut off?)",
                location=Location(source),
                hint=hint,
            )
        if not values["records"].isdigit() or not 0 < int(values["records"]) < 2**53:
            raise HeadError(
                "audit head: records must be a positive number", location=Location(source), hint=hint
            )
        for k in ("final", "sealed", "link"):
            if not _HEX64.fullmatch(values[k]):
                raise HeadError(
                    f"audit head: {k} is not a SHA-256 hex digest", location=Location(source), hint=hint
                )
        key, sig = values["key"], values["sig"]
        return cls(
            run_id=unquote(values["run"]),
            records=int(values["records"]),
            final=values["final"],
            sealed=values["sealed"],
            link=values["link"],
            key_id=None if key == "-" else key,
            sig=None if sig == "-" else sig,
        )

    def signature_problem(self, trust: AllowedSigners | None) -> str:
        """Why the head's own signature does not check out against ``trust`` ("" if it does or if
        nothing can be checked: an unsigned head, or no allowed signers given)."""
        if self.key_id is None or trust is None:
            return ""
        key = trust.get(self.key_id)
        if key is None:
            return f"the expected head is signed by {self.key_id}, which is not in the allowed signers"
        if self.sig is None or not key.verify(
            self.sig, seal_payload(self.run_id, self.records, self.sealed, True)
        ):
            return "the expected head's signature does not verify (the line was altered or mistyped)"
        return ""


class RunLike(Protocol):
    """What the head needs of a verified run (``verify.RunReport`` fits)."""

    run_id: str | None
    label: str
    last_seq: int
    records: int
    final: bool
    first_prev: str | None
    final_hash: str | None
    key_id: str | None
    final_seal: dict[str, Any] | None


def head_of(run: RunLike) -> Head | None:
    """The head a finished (final-sealed) run makes; None for a run without a final seal."""
    seal = run.final_seal
    if seal is None or not run.final or run.run_id is None or run.final_hash is None:
        return None
    sig = seal.get("sig")
    return Head(
        run_id=run.run_id,
        records=int(seal["seq"]),
        final=run.final_hash,
        sealed=str(seal.get("head")),
        link=run.first_prev or GENESIS,
        key_id=run.key_id,
        sig=sig if isinstance(sig, str) else None,
    )


def check_head(runs: Sequence[RunLike], head: Head, trust: AllowedSigners | None, what: str) -> list[str]:
    """Problems when the chain of ``runs`` (in order) does not contain ``head``: its run missing
    (newest runs deleted, directory rolled back, another chain), cut short, or different."""
    problems: list[str] = []
    sig = head.signature_problem(trust)
    if sig:
        problems.append(f"{what}: {sig}")
    name = f"run {head.run_id} ({head.records} records, final hash {head.final[:12]}...)"
    match = [r for r in runs if r.run_id == head.run_id]
    if match:
        r = match[-1]
        if r.key_id != head.key_id and head.key_id is not None:
            now = f"signed by {r.key_id}" if r.key_id else "unsigned"
            problems.append(
                f"{what}: run {head.run_id} was signed by {head.key_id} when the head was taken, and is {now} "
                "now (its signatures stripped or replaced)"
            )
        if r.final_hash == head.final and r.last_seq == head.records:
            return problems
        have = r.last_seq or r.records
        if have < head.records:
            gone = (
                f"record {head.records}" if have + 1 == head.records else f"records {have + 1}-{head.records}"
            )
            problems.append(
                f"{what}: run {head.run_id} is cut short: the head has {head.records} records, the directory "
                f"{have}; {gone} missing (newest records deleted, or the file rolled back to an older copy)"
            )
        else:
            problems.append(
                f"{what}: run {head.run_id} differs from the head (final hash {str(r.final_hash)[:12]}..., "
                f"{have} records; the head has {head.final[:12]}..., {head.records} records): the run was "
                "rewritten, or the head belongs to another copy of it"
            )
        return problems
    present = [r for r in runs if r.final_hash is not None]
    newest = present[-1] if present else None
    where = (
        f"the directory's chain ends at run {newest.label}"
        if newest
        else "the directory holds no readable run"
    )
    pred = next((i for i, r in enumerate(present) if r.final_hash == head.link), None)
    if newest is None:
        problems.append(f"{what}: {name} is missing: {where}")
    elif pred is not None and pred == len(present) - 1:
        problems.append(
            f"{what}: {name} is missing; it followed run {present[pred].label}, which is where the directory's "
            "chain now ends (the newest run was deleted, or the directory rolled back to an older copy)"
        )
    elif pred is not None:
        problems.append(
            f"{what}: {name} is missing; it followed run {present[pred].label}, but here run "
            f"{present[pred + 1].label} follows that run (the directory was rolled back and written on, "
            "or the head belongs to another audit chain)"
        )
    elif head.link == GENESIS:
        problems.append(
            f"{what}: {name} is not in this directory; it is the first run of its chain, so the head belongs "
            f"to another audit chain (or the directory was replaced); {where}"
        )
    else:
        problems.append(
            f"{what}: {name} is missing, and so is the run it followed (final hash {head.link[:12]}...); "
            f"{where}: at least 2 runs are missing after it (newest runs deleted, or the directory rolled "
            "back to an older copy), or the head belongs to another audit chain"
        )
    return problems


def apply_heads(report: Any, heads: Sequence[tuple[Head, str]], trust: AllowedSigners | None) -> None:
    """Check each (head, where it came from) against a verify ``Report``; record the outcome."""
    for head, source in heads:
        problems = check_head(report.runs, head, trust, f"expected head ({source})")
        report.problems.extend(problems)
        report.heads.append(
            {"source": source, "run_id": head.run_id, "line": head.line(), "ok": not problems}
        )


# -- the local head: written by the writer, checked by verify by default ---------------------------


def heads_dir() -> Path:
    env = os.environ.get(HEADS_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "runbook" / "audit-heads"


def _head_file(key: str) -> Path:
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(key))[:40] or "audit"
    return heads_dir() / f"{base}-{digest}.head"


def local_head_paths(directory: str | os.PathLike[str]) -> list[Path]:
    """The local head files of an audit directory: one keyed by its absolute path as given, one by its
    real path when that differs (so swapping the directory for a symlink to an older copy is still
    checked against the head written under the path it is used by)."""
    keys = [os.path.abspath(directory), os.path.realpath(directory)]
    return [_head_file(k) for i, k in enumerate(keys) if k not in keys[:i]]


def local_head_path(directory: str | os.PathLike[str]) -> Path:
    """The main local head file of an audit directory (keyed by its absolute path)."""
    return local_head_paths(directory)[0]


def local_head_holds(directory: str | os.PathLike[str]) -> bool:
    """Whether the directory still ends with (or extends) its local heads, judged cheaply from the
    head run's file tail: the writer only moves the local head on when it does, so a deleted tail or a
    rolled-back directory keeps failing verify until a human looks (and removes the head file)."""
    try:
        heads = load_local_heads(directory)
    except AuditError:
        return False
    return all(_tail_matches(directory, head) for head, _ in heads)


def _tail_matches(directory: str | os.PathLike[str], head: Head) -> bool:
    for path in list_runs(directory):
        if named_after(path.name, head.run_id):
            tail = last_valid(path)
            if tail is not None and tail.run_id == head.run_id:
                return tail.hash == head.final and tail.seq == head.records
    return False


def read_head_file(path: str | os.PathLike[str], what: str = "head file") -> Head:
    """The head a file holds: its last line that is not a ``#`` comment, or the JSON ``audit head
    --output json`` printed (read like every audit input: a regular file, bounded); HeadError if not."""
    try:
        text = read_regular(path, what, MAX_SMALL).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HeadError(
            f"cannot read the {what}: {getattr(exc, 'strerror', None) or exc}", location=Location(str(path))
        )
    if text.lstrip().startswith("{"):
        return Head.parse(text, str(path))
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise HeadError(f"the {what} holds no head", location=Location(str(path)))
    return Head.parse(lines[-1], str(path))


def load_local_heads(directory: str | os.PathLike[str]) -> list[tuple[Head, Path]]:
    """The local heads of ``directory`` with their files (none, one, or two when it is reached
    through a symlink); HeadError if one is unreadable."""
    return [
        (read_head_file(path, "local audit head file"), path)
        for path in local_head_paths(directory)
        if path.exists() or path.is_symlink()
    ]


def save_local_head(directory: str | os.PathLike[str], head: Head) -> list[Path]:
    """Replace the local head files atomically (temporary file, fsync, rename); OSError on failure."""
    paths = local_head_paths(directory)
    text = f"# runbook audit head of {os.path.abspath(directory)} ({os.path.realpath(directory)})\n{head.line()}\n"
    for path in paths:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".head-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return paths
