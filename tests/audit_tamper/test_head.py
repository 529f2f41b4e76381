"""A missing tail: newest runs deleted, the directory rolled back to an older copy, a head from another
chain, a truncated newest run. The hashes cannot see these; the head kept outside the directory
(`audit head`, `verify --expect-head`, the local head file) does."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from runbook.audit.head import HEAD_FORMAT, Head, local_head_path
from runbook.audit.keys import AllowedSigners

from .conftest import Pristine, exec_run
from .helpers import cli, failed, lines, put, records, rehash_from, runs, verify


def _head(d: Path, signers: Path | None, *extra: str) -> str:
    args = ["head", str(d), *extra] + (["--allowed-signers", str(signers)] if signers else [])
    out = cli(*args)
    assert out.exit_code == 0, out.output
    return out.output.strip().splitlines()[-1]


def _ids(d: Path) -> list[str]:
    return [records(p)[0]["run_id"] for p in runs(d)]


def test_head_is_one_line_naming_the_newest_run(trail: Path, pristine: Pristine) -> None:
    line = _head(trail, pristine.signers)
    newest = records(runs(trail)[-1])
    head = Head.parse(line)
    assert line.startswith(HEAD_FORMAT + " ") and "\n" not in line
    assert head.run_id == newest[0]["run_id"] and head.records == len(newest)
    assert head.final == newest[-1]["hash"] and head.sealed == newest[-1]["head"]
    assert head.link == newest[0]["prev"] and head.key_id == newest[0]["key_id"]
    assert head.sig == newest[-1]["sig"]
    assert head.signature_problem(AllowedSigners.load(pristine.signers)) == ""


def test_head_as_json(trail: Path, pristine: Pristine) -> None:
    doc = json.loads(
        cli("head", str(trail), "--allowed-signers", str(pristine.signers), "--output", "json").output
    )
    assert doc["line"] == _head(trail, pristine.signers)
    assert (
        doc["run_id"] == _ids(trail)[-1] and doc["runs"] == 3 and doc["key_id"].startswith("ed25519:SHA256:")
    )
    assert doc["chain_records"] == sum(len(records(p)) for p in runs(trail))
    newest = records(runs(trail)[-1])
    assert doc["final_hash"] == newest[-1]["hash"] and doc["signature"] == newest[-1]["sig"]
    assert doc["records"] == len(newest) and doc["prev_run_hash"] == newest[0]["prev"]
    out = verify(trail, pristine.signers, "--expect-head", json.dumps(doc))  # the JSON is accepted too
    assert out.exit_code == 0, out.output


def test_untouched_trail_contains_its_head(trail: Path, pristine: Pristine) -> None:
    line = _head(trail, pristine.signers)
    out = verify(trail, pristine.signers, "--expect-head", line)
    assert out.exit_code == 0, out.output
    assert f"expected head (--expect-head): run {_ids(trail)[-1]} is in the chain" in out.output


def test_chain_that_went_on_still_contains_an_older_head(trail: Path, pristine: Pristine) -> None:
    line = _head(trail, pristine.signers)
    exec_run(pristine.project, trail, pristine.key)
    assert verify(trail, pristine.signers, "--expect-head", line).exit_code == 0


def test_newest_run_deleted(trail: Path, pristine: Pristine) -> None:
    _a, b, c = _ids(trail)
    line = _head(trail, pristine.signers)
    runs(trail)[-1].unlink()
    assert verify(trail, pristine.signers).exit_code == 0  # what the hashes alone cannot see
    out = failed(trail, pristine.signers, "--expect-head", line)
    assert (
        f"run {c} (" in out
        and f"is missing; it followed run {b}, which is where the directory's chain now ends" in out
    )
    assert "(the newest run was deleted, or the directory rolled back to an older copy)" in out


def test_newest_two_runs_deleted(trail: Path, pristine: Pristine) -> None:
    a, _b, c = _ids(trail)
    line = _head(trail, pristine.signers)
    for p in runs(trail)[1:]:
        p.unlink()
    out = failed(trail, pristine.signers, "--expect-head", line)
    assert f"run {c} (" in out and "is missing, and so is the run it followed" in out
    assert f"the directory's chain ends at run {a}: at least 2 runs are missing after it" in out


def test_directory_rolled_back_to_an_older_copy(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    old = tmp_path / "backup"
    shutil.copytree(trail, old)
    exec_run(pristine.project, trail, pristine.key)
    exec_run(pristine.project, trail, pristine.key)
    line = _head(trail, pristine.signers)
    shutil.rmtree(trail)
    shutil.copytree(old, trail)  # the whole directory put back as it was two runs ago
    assert verify(trail, pristine.signers).exit_code == 0
    out = failed(trail, pristine.signers, "--expect-head", line)
    assert "is missing, and so is the run it followed" in out and f"chain ends at run {_ids(old)[-1]}" in out


def test_directory_rolled_back_and_written_on(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    """Rolled back one run, then a new genuine run written: the chain forks from the head's."""
    old = tmp_path / "backup"
    shutil.copytree(trail, old)
    exec_run(pristine.project, trail, pristine.key)
    line = _head(trail, pristine.signers)
    shutil.rmtree(trail)
    shutil.copytree(old, trail)
    exec_run(pristine.project, trail, pristine.key)
    assert verify(trail, pristine.signers).exit_code == 0
    out = failed(trail, pristine.signers, "--expect-head", line)
    fork = _ids(trail)[-1]
    assert f"is missing; it followed run {_ids(old)[-1]}, but here run {fork} follows that run" in out


def test_head_from_another_directory(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    other = tmp_path / "other"
    exec_run(pristine.project, other, pristine.key)  # same key, a chain of its own
    line = _head(other, pristine.signers)
    out = failed(trail, pristine.signers, "--expect-head", line)
    assert f"run {_ids(other)[0]} (" in out
    assert "it is the first run of its chain, so the head belongs to another audit chain" in out


def test_head_from_another_directory_with_history(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    other = tmp_path / "other"
    exec_run(pristine.project, other, pristine.key)
    exec_run(pristine.project, other, pristine.key)
    out = failed(trail, pristine.signers, "--expect-head", _head(other, pristine.signers))
    assert "or the head belongs to another audit chain" in out


@pytest.mark.parametrize("keep", [1, 3, -1])
def test_newest_run_truncated(trail: Path, pristine: Pristine, keep: int) -> None:
    newest = runs(trail)[-1]
    line = _head(trail, pristine.signers)
    ls = lines(newest)
    put(newest, ls[:keep])
    have = len(ls[:keep])
    out = failed(trail, pristine.signers, "--expect-head", line)
    missing = f"record {len(ls)}" if have + 1 == len(ls) else f"records {have + 1}-{len(ls)}"
    assert f"is cut short: the head has {len(ls)} records, the directory {have}; {missing} missing" in out


def test_newest_run_rewritten_and_resigned(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    """The run is replaced by another one with the same id (here: the same run from another copy)."""
    line = _head(trail, pristine.signers)
    newest = runs(trail)[-1]
    recs = records(newest)
    recs[2]["ts"] = "2001-01-01T00:00:00.000000Z"
    put(newest, rehash_from(recs, 2))
    out = failed(trail, pristine.signers, "--expect-head", line)
    assert f"run {recs[0]['run_id']} differs from the head" in out


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda h: h.replace(" records=", " records=1", 1), "the expected head's signature does not verify"),
        (lambda h: h[: h.index(" sig=") + 5] + "A" * 86 + "==", "signature does not verify"),
    ],
)
def test_altered_head_is_not_trusted(trail: Path, pristine: Pristine, change, expected: str) -> None:
    out = failed(trail, pristine.signers, "--expect-head", change(_head(trail, pristine.signers)))
    assert expected in out


def test_head_signed_by_a_key_nobody_trusts(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    other = tmp_path / "other"
    exec_run(pristine.project, other, pristine.other_key)
    mallory = tmp_path / "mallory_signers"
    mallory.write_text("mallory " + Path(f"{pristine.other_key}.pub").read_text())
    line = _head(other, mallory)
    out = failed(trail, pristine.signers, "--expect-head", line)
    assert "which is not in the allowed signers" in out


@pytest.mark.parametrize(
    "bad",
    ["", "hello", f"{HEAD_FORMAT} run=x", f"{HEAD_FORMAT} run=x records=0 final=a sealed=b link=c key=- sig=-",
     "{not json", '{"line": 5}', '{"a":' * 100000],
)  # fmt: skip
def test_malformed_head_is_a_usage_error(trail: Path, pristine: Pristine, bad: str) -> None:
    out = verify(trail, pristine.signers, "--expect-head", bad)
    assert out.exit_code == 2 and "audit head" in out.output, out.output


def test_head_of_a_trail_that_does_not_verify_is_refused(trail: Path, pristine: Pristine) -> None:
    runs(trail)[1].unlink()
    out = cli("head", str(trail), "--allowed-signers", str(pristine.signers))
    assert out.exit_code == 1 and "no head printed" in out.output and "run missing between" in out.output
    assert HEAD_FORMAT not in out.output


def test_head_of_a_truncated_newest_run_is_refused(trail: Path, pristine: Pristine) -> None:
    newest = runs(trail)[-1]
    put(newest, lines(newest)[:-1])
    out = cli("head", str(trail), "--allowed-signers", str(pristine.signers))
    assert out.exit_code == 1 and "no head printed" in out.output


def test_head_of_unsigned_runs(tmp_path: Path, pristine: Pristine) -> None:
    d = tmp_path / "unsigned"
    exec_run(pristine.project, d, None)
    out = cli("head", str(d), "--allow-unsigned")
    assert out.exit_code == 0 and "this head pins content, no signature" in out.output
    line = out.output.strip().splitlines()[-1]
    assert line.endswith(" key=- sig=-")
    assert verify(d, None, "--allow-unsigned", "--expect-head", line).exit_code == 0
    runs(d)[-1].unlink()
    exec_run(pristine.project, d, None)  # a different run in its place
    assert verify(d, None, "--allow-unsigned", "--expect-head", line).exit_code == 1


def test_run_id_with_spaces_round_trips() -> None:
    head = Head("a b=c%", 3, "0" * 64, "1" * 64, "2" * 64, None, None)
    assert " " not in head.line().split(" run=")[1].split(" ")[0]
    assert Head.parse(head.line()) == head


# -- the local head file ---------------------------------------------------------------------------


@pytest.fixture
def local(pristine: Pristine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An audit directory of two runs written by `runbook exec`, whose local head this test sees."""
    d = tmp_path / "audit"
    exec_run(pristine.project, d, pristine.key)
    exec_run(pristine.project, d, pristine.key)
    monkeypatch.setenv("XDG_STATE_HOME", str(pristine.project / "state"))  # where exec wrote it
    return d


def test_exec_writes_the_local_head_outside_the_directory(local: Path, pristine: Pristine) -> None:
    path = local_head_path(local)
    assert path.is_file() and not path.is_relative_to(local)
    assert path.read_text().splitlines()[-1] == _head(local, pristine.signers)
    out = verify(local, pristine.signers)
    assert out.exit_code == 0 and f"expected head (local head {path})" in out.output, out.output


def test_local_head_catches_the_newest_run_deleted(local: Path, pristine: Pristine) -> None:
    a, b = _ids(local)
    runs(local)[-1].unlink()
    out = failed(local, pristine.signers)
    assert f"expected head (local head {local_head_path(local)}): run {b} (" in out
    assert f"is missing; it followed run {a}" in out
    assert f"remove {local_head_path(local)}" in out  # what to do after a deliberate reset
    assert verify(local, pristine.signers, "--no-local-head").exit_code == 0


def test_local_head_is_not_moved_over_a_missing_tail(local: Path, pristine: Pristine) -> None:
    """A run written after the tail was deleted does not hide the deletion by moving the head on."""
    before = local_head_path(local).read_text()
    runs(local)[-1].unlink()
    exec_run(pristine.project, local, pristine.key)
    assert local_head_path(local).read_text() == before
    failed(local, pristine.signers)
    local_head_path(local).unlink()  # the human decision: accept the directory as it is
    exec_run(pristine.project, local, pristine.key)
    assert verify(local, pristine.signers).exit_code == 0


def test_local_head_catches_a_rolled_back_directory(local: Path, pristine: Pristine, tmp_path: Path) -> None:
    old = tmp_path / "backup"
    shutil.copytree(local, old)
    exec_run(pristine.project, local, pristine.key)
    shutil.rmtree(local)
    shutil.copytree(old, local)
    out = failed(local, pristine.signers)
    assert "which is where the directory's chain now ends" in out


@pytest.mark.timeout(20)
def test_hostile_local_head_file(local: Path, pristine: Pristine) -> None:
    path = local_head_path(local)
    path.unlink()
    os.mkfifo(path)
    out = verify(local, pristine.signers)
    assert out.exit_code == 2 and "local audit head file is a FIFO" in out.output, out.output


def test_garbled_local_head_file(local: Path, pristine: Pristine) -> None:
    local_head_path(local).write_text("# nothing here\n")
    out = verify(local, pristine.signers)
    assert out.exit_code == 2 and "holds no head" in out.output


def test_whole_trail_rewritten_unsigned(trail: Path, pristine: Pristine) -> None:
    """Every run stripped of its signatures and re-chained: unsigned from its start, so
    --allow-unsigned admits it -- the signed head does not."""
    from .helpers import unsigned

    line = _head(trail, pristine.signers)
    prev = None
    for p in runs(trail):
        recs = records(p)
        put(p, unsigned(recs, after=prev) if prev else unsigned(recs))
        prev = records(p)[-1]
    assert verify(trail, pristine.signers, "--allow-unsigned").exit_code == 0  # the limit without a head
    out = failed(trail, pristine.signers, "--allow-unsigned", "--expect-head", line)
    assert "when the head was taken, and is unsigned now (its signatures stripped or replaced)" in out


def test_expect_head_on_an_emptied_directory(trail: Path, pristine: Pristine) -> None:
    line = _head(trail, pristine.signers)
    for p in runs(trail):
        p.unlink()
    out = failed(trail, pristine.signers, "--expect-head", line)
    assert "is missing: the directory holds no readable run" in out


def test_expect_head_with_a_bundle(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    line = _head(trail, pristine.signers)
    newest, older = tmp_path / "newest.tar.gz", tmp_path / "older.tar.gz"
    assert cli("export", "latest", "--dir", str(trail), "--out", str(newest)).exit_code == 0
    assert cli("export", runs(trail)[0].name, "--dir", str(trail), "--out", str(older)).exit_code == 0
    assert verify(newest, pristine.signers, "--expect-head", line).exit_code == 0
    assert "is missing" in failed(older, pristine.signers, "--expect-head", line)


def test_dsn_from_the_environment_is_not_used_for_a_bundle(
    trail: Path, pristine: Pristine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$RUNBOOK_AUDIT_DSN (set for `exec`) cross-checks directories; a bundle verifies offline."""
    bundle = tmp_path / "b.tar.gz"
    assert cli("export", "latest", "--dir", str(trail), "--out", str(bundle)).exit_code == 0
    monkeypatch.setenv("RUNBOOK_AUDIT_DSN", "postgresql://nobody@127.0.0.1:1/none")
    assert verify(bundle, pristine.signers).exit_code == 0
    out = verify(bundle, pristine.signers, "--audit-dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert out.exit_code == 2 and "--audit-dsn cross-checks an audit directory" in out.output


def test_expect_head_from_a_file(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    ticket = tmp_path / "CHG-123.head"
    ticket.write_text("# pinned in change CHG-123\n" + _head(trail, pristine.signers) + "\n")
    out = verify(trail, pristine.signers, "--expect-head", f"@{ticket}")
    assert out.exit_code == 0 and f"expected head ({ticket}): run" in out.output, out.output
    runs(trail)[-1].unlink()
    assert f"expected head ({ticket}): run" in failed(trail, pristine.signers, "--expect-head", f"@{ticket}")


@pytest.mark.timeout(20)
def test_expect_head_file_that_is_a_fifo(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "head")
    out = verify(trail, pristine.signers, "--expect-head", f"@{tmp_path / 'head'}")
    assert out.exit_code == 2 and "head file is a FIFO" in out.output, out.output


def test_head_line_wrapped_by_a_ticket_system(trail: Path, pristine: Pristine) -> None:
    wrapped = _head(trail, pristine.signers).replace(" sig=", "\n  sig=").replace(" final=", "\r\nfinal=")
    assert verify(trail, pristine.signers, "--expect-head", wrapped).exit_code == 0


def test_control_characters_from_files_and_heads_never_reach_the_terminal(
    trail: Path, pristine: Pristine
) -> None:
    from .helpers import unsigned

    newest = runs(trail)[-1]
    recs = records(newest)
    evil = "x\x1b]0;pwned\x07\x1b[2J"
    put(newest, unsigned(recs, run_id=evil))
    head = Head(evil + "\r", 3, "0" * 64, "1" * 64, "2" * 64, None, None)
    out = verify(trail, pristine.signers, "--expect-head", head.line())
    assert out.exit_code == 1
    assert "\x1b" not in out.output and "\x07" not in out.output and "\r" not in out.output
    assert "x\\x1b]0;pwned\\x07\\x1b[2J" in out.output


def test_json_reports_name_the_heads(trail: Path, pristine: Pristine) -> None:
    line = _head(trail, pristine.signers)
    runs(trail)[-1].unlink()
    out = verify(trail, pristine.signers, "--expect-head", line, "--output", "json")
    doc = json.loads(out.output)
    assert out.exit_code == 1 and doc["ok"] is False
    assert doc["heads"] == [
        {"source": "--expect-head", "run_id": Head.parse(line).run_id, "line": line, "ok": False}
    ]
    assert any("is missing; it followed run" in p for p in doc["problems"])
    res = cli(
        "head", str(trail), "--allowed-signers", str(pristine.signers), "--output", "json", "--no-local-head"
    )
    assert res.exit_code == 0 and json.loads(res.output)["run_id"] == _ids(trail)[-1]


def test_head_of_a_failing_trail_as_json_is_an_error_document(trail: Path, pristine: Pristine) -> None:
    runs(trail)[1].unlink()
    res = cli("head", str(trail), "--allowed-signers", str(pristine.signers), "--output", "json")
    doc = json.loads(res.output[res.output.index('{\n  "status"') :])
    assert res.exit_code == 1 and doc["status"] == "error" and "no head printed" in doc["message"]


def test_audit_directory_swapped_for_a_symlink_to_an_older_copy(
    pristine: Pristine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory is used through a symlink; the attacker points the symlink at a backup. The head
    written under the path it is used by still names the newest run."""
    real, old = tmp_path / "data" / "audit", tmp_path / "backup"
    link = tmp_path / "audit"
    real.parent.mkdir()
    exec_run(pristine.project, real, pristine.key)
    shutil.copytree(real, old)
    link.symlink_to(real)
    exec_run(pristine.project, link, pristine.key)
    monkeypatch.setenv("XDG_STATE_HOME", str(pristine.project / "state"))
    assert verify(link, pristine.signers).exit_code == 0
    link.unlink()
    link.symlink_to(old)
    out = failed(link, pristine.signers)
    assert f"expected head (local head {local_head_path(link)})" in out and "is missing" in out


def test_head_without_allowed_signers_checks_the_runs_own_keys(trail: Path, pristine: Pristine) -> None:
    """On the operator's machine there may be no allowed_signers file: the head is still printed (the
    seals checked against the keys the runs name), and verify with the auditors' file checks it."""
    out = cli("head", str(trail))
    assert out.exit_code == 0 and "no allowed signers given" in out.output, out.output
    line = out.output.strip().splitlines()[-1]
    assert line == _head(trail, pristine.signers)
    assert verify(trail, pristine.signers, "--expect-head", line).exit_code == 0


def test_head_without_allowed_signers_still_refuses_a_forged_seal(trail: Path, pristine: Pristine) -> None:
    newest = runs(trail)[-1]
    recs = records(newest)
    recs[-1]["sig"] = recs[-2].get("sig") or "AAAA" + recs[-1]["sig"][4:]
    put(newest, rehash_from(recs, len(recs) - 1))
    out = cli("head", str(trail))
    assert out.exit_code == 1 and "bad signature" in out.output and "no head printed" in out.output
