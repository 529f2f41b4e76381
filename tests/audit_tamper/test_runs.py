"""Whole run files deleted, replaced, renamed, reordered, emptied; empty and odd directories."""

from __future__ import annotations

import shutil
from pathlib import Path

from .conftest import Pristine, exec_run
from .helpers import failed, lines, put, records, runs, verify


def _ids(d: Path) -> list[str]:
    return [records(p)[0]["run_id"] for p in runs(d)]


def test_middle_run_deleted(trail: Path, pristine: Pristine) -> None:
    a, _b, c = _ids(trail)
    runs(trail)[1].unlink()
    out = failed(trail, pristine.signers)
    assert f"run missing between {a} and {c} (chain broken" in out


def test_oldest_run_deleted_is_a_warning_only(trail: Path, pristine: Pristine) -> None:
    """Archiving old runs is allowed: the chain start is reported, not failed (design decision)."""
    a, b, _c = _ids(trail)
    runs(trail)[0].unlink()
    out = verify(trail, pristine.signers)
    assert out.exit_code == 0 and f"the chain starts at run {b}, which follows run {a}" in out.output


def test_run_replaced_by_another(trail: Path, pristine: Pristine) -> None:
    _a, _b, c = _ids(trail)
    _first, second, third = runs(trail)
    shutil.copyfile(third, second)
    out = failed(trail, pristine.signers)
    assert f"run {c} appears twice ({second.name} and {third.name})" in out
    assert f"run file {second.name} is not named after its run {c} (renamed?)" in out


def test_run_renamed_in_place(trail: Path, pristine: Pristine) -> None:
    b = runs(trail)[1]
    new = b.with_name(b.name.replace(".jsonl", "-x.jsonl"))
    b.rename(new)
    out = failed(trail, pristine.signers)
    assert f"run file {new.name} is not named after its run" in out


def test_runs_reordered_by_renaming(trail: Path, pristine: Pristine) -> None:
    a, b, _c = _ids(trail)
    second = runs(trail)[1]
    second.rename(trail / ("19990101T000000.000000Z_" + second.name.split("_", 1)[1]))  # sorts first
    out = failed(trail, pristine.signers)
    assert f"runs out of order: run {b} follows run {a}, but its file sorts before it" in out
    assert "run missing" not in out and "not part of the chain" not in out


def test_two_runs_swapped_by_renaming(trail: Path, pristine: Pristine) -> None:
    _first, second, third = runs(trail)
    tmp = trail / "tmp"
    second.rename(tmp)
    third.rename(second.with_name(second.name.split("_")[0] + "_" + third.name.split("_", 1)[1]))
    tmp.rename(third.with_name(third.name.split("_")[0] + "_" + second.name.split("_", 1)[1]))
    out = failed(trail, pristine.signers)
    assert "runs out of order" in out


def test_empty_run_file(trail: Path, pristine: Pristine) -> None:
    a, _b, c = _ids(trail)
    second = runs(trail)[1]
    second.write_bytes(b"")
    out = failed(trail, pristine.signers)
    assert f"run file {second.name} is empty (no records)" in out
    assert (
        f"cannot check the chain from run {a} to run {c}: run file {second.name} before it has no readable"
        in out
    )


def test_run_file_of_garbage(trail: Path, pristine: Pristine) -> None:
    second = runs(trail)[1]
    second.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    out = failed(trail, pristine.signers)
    assert f"run file {second.name}: line 1 is not a valid JSON record (corrupted)" in out


def test_foreign_jsonl_file_in_the_directory(trail: Path, pristine: Pristine) -> None:
    (trail / "notes.jsonl").write_text('{"note": "hi"}\n')
    out = failed(trail, pristine.signers)
    assert "run file notes.jsonl: line 1 is not an audit record" in out


def test_directory_with_no_runs(tmp_path: Path, pristine: Pristine) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".lock").write_bytes(b"")
    out = verify(tmp_path / "empty", pristine.signers)
    assert out.exit_code == 1 and "no audit runs (*.jsonl) found in" in out.output


def test_missing_path(tmp_path: Path, pristine: Pristine) -> None:
    out = verify(tmp_path / "nope", pristine.signers)
    assert out.exit_code == 1 and "no such audit file or directory" in out.output


def test_a_run_file_verified_alone(trail: Path, pristine: Pristine) -> None:
    second = runs(trail)[1]
    assert verify(second, pristine.signers).exit_code == 0
    ls = lines(second)
    put(second, [*ls[:3], *ls[4:]])
    out = failed(second, pristine.signers)
    assert "record 4 missing (seq jumps 3 -> 5)" in out


def test_signing_key_swapped(trail: Path, pristine: Pristine) -> None:
    """Someone replaced the operator's signing key: the next run is signed by a key nobody trusts."""
    exec_run(pristine.project, trail, pristine.other_key)
    fourth = records(runs(trail)[3])
    out = failed(trail, pristine.signers)
    assert (
        f"run {fourth[0]['run_id']}: seal at record {len(fourth)} signed by untrusted key {fourth[0]['key_id']}"
        in out
    )
    assert out.count("FAIL  ") == 1  # the three genuine runs still verify, and still chain
