"""Verify through the real CLI, and the tampering primitives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from runbook.audit.chain import list_runs, seal_line
from runbook.cli.audit_cmd import audit


@dataclass
class Outcome:
    exit_code: int
    output: str

    @property
    def problems(self) -> list[str]:
        return [line.strip() for line in self.output.splitlines() if line.startswith(("      run", "FAIL  "))]


def cli(*args: str) -> Outcome:
    """Run `runbook audit ARGS` in-process; no traceback and no internal error, whatever the input."""
    res = CliRunner().invoke(audit, list(args), env={"COLUMNS": "400"})
    out = res.output
    assert "Traceback" not in out and "internal error" not in out, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return Outcome(res.exit_code, out)


def verify(target: Path, signers: Path | None, *extra: str) -> Outcome:
    args = ["verify", str(target), *extra]
    if signers is not None:
        args += ["--allowed-signers", str(signers)]
    return cli(*args)


def failed(target: Path, signers: Path | None, *extra: str) -> str:
    """Verify, insist it fails (exit 1, not OK) and return the output."""
    out = verify(target, signers, *extra)
    assert out.exit_code == 1, out.output
    assert "FAILED" in out.output and "\nOK:" not in out.output, out.output
    return out.output


def runs(d: Path) -> list[Path]:
    return list_runs(d)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def put(path: Path, new: list[bytes]) -> None:
    path.write_bytes(b"".join(new))


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def line_of(rec: dict[str, Any]) -> bytes:
    """The canonical line of a record, its hash recomputed (what an attacker without the key can do)."""
    body = {k: v for k, v in rec.items() if k != "hash"}
    return seal_line(body)[1]


def rehash_from(recs: list[dict[str, Any]], start: int) -> list[bytes]:
    """Recompute hashes and prev links from index ``start`` on (signatures untouched: no key)."""
    out = [line_of(r) for r in recs[:start]]
    prev = recs[start - 1]["hash"] if start else recs[0]["prev"]
    for rec in recs[start:]:
        body = {k: v for k, v in rec.items() if k != "hash"}
        body["prev"] = prev
        if body["event"] == "seal":
            body["head"] = prev
        prev, line = seal_line(body)
        out.append(line)
    return out


def unsigned(
    recs: list[dict[str, Any]], *, run_id: str | None = None, after: dict[str, Any] | None = None
) -> list[bytes]:
    """The run re-written without any signature, as anyone without the key can: signer fields and
    seal signatures dropped, every hash recomputed. ``run_id`` renames it; ``after`` (the final record
    of another run) makes it the run that follows that one (a fabricated next run)."""
    out: list[dict[str, Any]] = []
    for rec in recs:
        body = {k: v for k, v in rec.items() if k not in ("key_id", "public_key", "sig")}
        if run_id is not None:
            body["run_id"] = run_id
        out.append(body)
    if after is not None:
        out[0]["prev"] = after["hash"]
        out[0]["prev_run"] = {"final_hash": after["hash"], "run_id": after["run_id"]}
    return rehash_from(out, 0)
