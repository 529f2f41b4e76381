"""Signed -> unsigned downgrades: --allow-unsigned admits a chain that is unsigned from its start (or
unsigned runs before the first signed one), never an unsigned run after a signed one."""

from __future__ import annotations

from pathlib import Path

from runbook.audit.export import export_runs

from .conftest import Pristine, exec_run
from .helpers import failed, put, records, rehash_from, runs, unsigned, verify

DOWNGRADE = "is unsigned, but it follows signed run"


def _fabricate_next(d: Path, run_id: str = "20991231T000000Z-f00dcafe") -> Path:
    """Append a run made up by someone without the key: a copy of the newest run, renamed, unsigned,
    linked to the newest run's final hash, in a file named the way the writer names it."""
    newest = runs(d)[-1]
    recs = records(newest)
    path = d / f"29991231T000000.000000Z_{run_id}.jsonl"
    put(path, unsigned(recs, run_id=run_id, after=recs[-1]))
    return path


def test_fabricated_unsigned_run_after_a_signed_chain(trail: Path, pristine: Pristine) -> None:
    signed_last = records(runs(trail)[-1])[0]["run_id"]
    _fabricate_next(trail)
    out = failed(trail, pristine.signers, "--allow-unsigned")
    assert f"run 20991231T000000Z-f00dcafe {DOWNGRADE} {signed_last}" in out
    assert "--allow-unsigned does not admit it" in out
    assert "run missing" not in out and "chain broken" not in out  # the link itself is consistent
    assert out.count("FAIL  ") == 1


def test_fabricated_unsigned_run_without_allow_unsigned_names_the_downgrade_too(
    trail: Path, pristine: Pristine
) -> None:
    _fabricate_next(trail)
    out = failed(trail, pristine.signers)
    assert "unsigned (no signing key was configured when it was written)" in out and DOWNGRADE in out


def test_newest_run_stripped_of_its_signatures(trail: Path, pristine: Pristine) -> None:
    """The newest signed run re-written unsigned (key fields and seal signatures removed, rehashed)."""
    newest = runs(trail)[-1]
    recs = records(newest)
    before = records(runs(trail)[-2])[0]["run_id"]
    put(newest, unsigned(recs))
    out = failed(trail, pristine.signers, "--allow-unsigned")
    assert f"run {recs[0]['run_id']} {DOWNGRADE} {before}" in out


def test_middle_run_stripped_of_its_signatures(trail: Path, pristine: Pristine) -> None:
    middle = runs(trail)[1]
    recs = records(middle)
    put(middle, unsigned(recs))
    out = failed(trail, pristine.signers, "--allow-unsigned")
    assert f"run {recs[0]['run_id']} {DOWNGRADE}" in out
    assert "was altered after run" in out  # the run after it still links to the signed original


def test_final_seal_replaced_by_an_unsigned_one(trail: Path, pristine: Pristine) -> None:
    """Only the final seal made unsigned: the run still names its signer in record 1."""
    newest = runs(trail)[-1]
    recs = records(newest)
    recs[-1] = {k: v for k, v in recs[-1].items() if k not in ("sig", "key_id")}
    put(newest, rehash_from(recs, len(recs) - 1))
    out = failed(trail, pristine.signers, "--allow-unsigned")
    assert f"seal at record {len(recs)} is unsigned, but the run names signer" in out


def test_unsigned_then_signed_is_admitted(mixed: Path, pristine: Pristine) -> None:
    """Runs written before the operator made a key, then signed ones: fine with --allow-unsigned."""
    out = verify(mixed, pristine.signers, "--allow-unsigned")
    assert out.exit_code == 0, out.output
    assert "note: unsigned (allowed by --allow-unsigned)" in out.output
    assert DOWNGRADE not in out.output


def test_unsigned_then_signed_without_allow_unsigned_fails(mixed: Path, pristine: Pristine) -> None:
    out = failed(mixed, pristine.signers)
    assert "unsigned (no signing key was configured" in out and DOWNGRADE not in out


def test_unsigned_signed_unsigned(mixed: Path, pristine: Pristine) -> None:
    """A genuine unsigned run written after the signed one (the key was lost or removed): reported."""
    signed_run = records(runs(mixed)[-1])[0]["run_id"]
    exec_run(pristine.project, mixed, None)
    third = records(runs(mixed)[-1])[0]["run_id"]
    out = failed(mixed, pristine.signers, "--allow-unsigned")
    assert f"run {third} {DOWNGRADE} {signed_run}" in out
    assert out.count("FAIL  ") == 1  # the unsigned run before the first signed one is still admitted


def test_unsigned_chain_from_its_start(tmp_path: Path, pristine: Pristine) -> None:
    d = tmp_path / "unsigned"
    exec_run(pristine.project, d, None)
    _fabricate_next(d)  # unsigned after unsigned: no downgrade (nothing here was ever signed)
    out = verify(d, pristine.signers, "--allow-unsigned")
    assert out.exit_code == 0 and DOWNGRADE not in out.output, out.output


def test_downgrade_in_an_exported_bundle(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    newest = runs(trail)[-1]
    fake = _fabricate_next(trail)
    export_runs([newest, fake], tmp_path / "both.tar.gz")
    out = failed(tmp_path / "both.tar.gz", pristine.signers, "--allow-unsigned")
    assert DOWNGRADE in out
