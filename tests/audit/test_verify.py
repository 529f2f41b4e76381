from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.audit.chain import seal_line
from runbook.audit.keys import AllowedSigners, Signer
from runbook.audit.verify import verify_directory, verify_file

from .helpers import read_lines, rechain, records, run_file, write_lines, write_run


@pytest.fixture
def three_runs(tmp_path: Path, key: Signer) -> Path:
    d = tmp_path / "audit"
    for run_id in ("run-a", "run-b", "run-c"):
        write_run(d, run_id, key, steps=12)
    return d


def problems(d: Path, trust: AllowedSigners | None, **kw: bool) -> list[str]:
    report = verify_directory(d, trust, **kw)
    assert not report.ok
    return report.all_problems()


def test_good_runs_verify(three_runs: Path, trust: AllowedSigners) -> None:
    report = verify_directory(three_runs, trust)
    assert report.ok, report.all_problems()
    assert report.records == sum(len(records(p)) for p in three_runs.glob("*.jsonl"))
    assert all(r.signer == "ops@example.com" and r.final and r.outcome == "success" for r in report.runs)
    assert not report.warnings


def test_altered_byte(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-b")
    lines = read_lines(path)
    assert b'"outcome":"changed"' in lines[5]
    lines[5] = lines[5].replace(b'"outcome":"changed"', b'"outcome":"chansed"')
    write_lines(path, lines)
    assert problems(three_runs, trust) == ["run run-b: record 6 altered (hash mismatch)"]


def test_altered_record_with_recomputed_hash(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-b")
    lines = read_lines(path)
    rec = json.loads(lines[6])
    rec["rc"] = 1
    del rec["hash"]
    lines[6] = seal_line(rec)[1]
    write_lines(path, lines)
    assert problems(three_runs, trust) == [
        "run run-b: record 8: chain broken (prev does not match record 7's hash)"
    ]


def test_flipped_byte_anywhere_is_detected(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-a")
    original = path.read_bytes()
    for pos in range(0, len(original), 97):
        if original[pos : pos + 1] == b"\n":
            continue
        data = bytearray(original)
        data[pos] ^= 0x01
        path.write_bytes(bytes(data))
        assert not verify_directory(three_runs, trust).ok, pos
    path.write_bytes(original)
    assert verify_directory(three_runs, trust).ok


def test_deleted_record(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-b")
    lines = read_lines(path)
    del lines[16]
    write_lines(path, lines)
    assert problems(three_runs, trust) == ["run run-b: record 17 missing (seq jumps 16 -> 18)"]


def test_deleted_records(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-b")
    lines = read_lines(path)
    del lines[3:6]
    write_lines(path, lines)
    assert problems(three_runs, trust) == ["run run-b: records 4-6 missing (seq jumps 3 -> 7)"]


def test_swapped_records(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-b")
    lines = read_lines(path)
    lines[16], lines[17] = lines[17], lines[16]
    write_lines(path, lines)
    assert problems(three_runs, trust) == ["run run-b: records 17 and 18 reordered"]


def test_duplicated_record(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-b")
    lines = read_lines(path)
    lines.insert(5, lines[4])
    write_lines(path, lines)
    assert problems(three_runs, trust) == ["run run-b: record 5 duplicated (found after record 5)"]


def test_truncated_run(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-c")
    write_lines(path, read_lines(path)[:23])
    assert problems(three_runs, trust) == ["run run-c truncated after record 23 (no final seal)"]


def test_truncated_with_partial_line_and_periodic_seal(
    tmp_path: Path, key: Signer, trust: AllowedSigners
) -> None:
    path = write_run(tmp_path, "r", key, steps=20, seal_records=10)
    lines = read_lines(path)
    write_lines(path, [*lines[:30], lines[30][:40]])
    (msg,) = problems(tmp_path, trust)
    assert msg.startswith("run r truncated after record 30 (no final seal; last line is partial")
    assert "records 1-" in msg and "covered by a valid seal" in msg


def test_resigned_with_unknown_key(three_runs: Path, trust: AllowedSigners, other_key: Signer) -> None:
    path = run_file(three_runs, "run-b")
    recs = records(path)
    recs[5]["outcome"] = "ok"  # the attacker's edit, made consistent by re-hashing and re-signing
    write_lines(path, rechain(recs, other_key))
    msgs = problems(three_runs, trust)
    assert f"run run-b: seal at record {len(recs)} signed by untrusted key {other_key.key_id}" in msgs
    assert any("run-c" in m and "chain broken" in m for m in msgs)  # run-c linked to the original


def test_resigned_without_key_is_unsigned(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-c")
    write_lines(path, rechain(records(path), None))
    msgs = problems(three_runs, trust)
    assert msgs[0] == "run run-c: unsigned (no signing key was configured when it was written)"
    assert msgs[1].startswith("run run-c is unsigned, but it follows signed run run-b")  # a downgrade
    assert len(msgs) == 2


def test_bad_signature(three_runs: Path, trust: AllowedSigners, key: Signer) -> None:
    lines = read_lines(run_file(three_runs, "run-b"))
    body = json.loads(lines[-1])
    body["sig"] = key.sign(b"not the payload")
    del body["hash"]
    lines[-1] = seal_line(body)[1]
    write_lines(run_file(three_runs, "run-b"), lines)
    assert problems(three_runs, trust)[0] == f"run run-b: seal at record {len(lines)}: bad signature"


def test_final_flag_forged_on_periodic_seal(tmp_path: Path, key: Signer, trust: AllowedSigners) -> None:
    path = write_run(tmp_path, "r", key, steps=20, seal_records=10)
    recs = records(path)
    cut = next(i for i, r in enumerate(recs) if r["event"] == "seal")
    body = recs[cut]
    body["final"] = True  # pretend the run ended at a periodic seal
    del body["hash"]
    write_lines(path, [*read_lines(path)[:cut], seal_line(body)[1]])
    assert problems(tmp_path, trust) == [f"run r: seal at record {cut + 1}: bad signature"]


def test_deleted_run(three_runs: Path, trust: AllowedSigners) -> None:
    run_file(three_runs, "run-b").unlink()
    assert problems(three_runs, trust) == [
        "run missing between run-a and run-c (chain broken: run run-c's prev_run hash does not match "
        "run run-a's final hash)"
    ]


def test_inserted_forged_run(three_runs: Path, trust: AllowedSigners, other_key: Signer) -> None:
    a, b = run_file(three_runs, "run-a"), run_file(three_runs, "run-b")
    forged = records(a)  # chained to run-a's final hash, like a real run would be
    first_prev = records(a)[-1]["hash"]
    for r in forged:
        r["run_id"] = "forged"
    forged[0]["prev"] = first_prev
    forged[0]["prev_run"] = {"run_id": "run-a", "final_hash": first_prev}
    name = a.name.replace("_run-a", "_run-a~forged")
    assert a.name < name < b.name
    write_lines(three_runs / name, rechain(forged, other_key))
    msgs = problems(three_runs, trust)
    assert "run forged: seal at record 1" not in msgs
    assert any(m.startswith("run forged: seal at record") and "untrusted key" in m for m in msgs)
    assert (
        "run forged is not part of the chain: run run-b links to run run-a "
        "(run inserted or forged between run-a and run-b?)"
    ) in msgs


def test_no_allowed_signers(three_runs: Path) -> None:
    msgs = problems(three_runs, None)
    assert all("no allowed signers were given" in m for m in msgs) and len(msgs) == 3


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "run file x.jsonl is empty (no records)"),
        (b"not json at all\n", "run file x.jsonl: line 1 is not a valid JSON record (corrupted)"),
        (
            b'{"seq": 1}\n',
            "run file x.jsonl: line 1 is not an audit record (missing seq/hash/prev/event/run_id)",
        ),
        (b'{"seq": 1, "hash": "x", "pr', "run file x.jsonl holds no complete record (write interrupted)"),
        (b"\x00\xff\xfe garbage\n[1,2]\n", "run file x.jsonl: line 1 is not a valid JSON record (corrupted)"),
        (b"[" * 100000 + b"\n", "run file x.jsonl: line 1 is not a valid JSON record (corrupted)"),
    ],
)
def test_garbage_never_crashes(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "x.jsonl").write_bytes(content)
    report = verify_directory(tmp_path, None)
    assert not report.ok and report.all_problems()[0] == expected


def test_garbage_line_inside_a_run(three_runs: Path, trust: AllowedSigners) -> None:
    path = run_file(three_runs, "run-a")
    lines = read_lines(path)
    lines[3] = b"\x00garbage\n"
    write_lines(path, lines)
    assert problems(three_runs, trust) == [
        "run run-a: line 4 is not a valid JSON record (corrupted)",
        "run run-a: record 4 missing (seq jumps 3 -> 5)",
    ]


def test_single_file_and_archived_predecessor(three_runs: Path, trust: AllowedSigners) -> None:
    b = run_file(three_runs, "run-b")
    report = verify_file(b, trust)
    assert report.ok and "run-a" in report.runs[0].notes[0]
    run_file(three_runs, "run-a").unlink()
    report = verify_directory(three_runs, trust)
    assert report.ok and "earlier runs archived or deleted" in report.warnings[0]


def test_empty_directory(tmp_path: Path) -> None:
    assert "no audit runs" in verify_directory(tmp_path, None).problems[0]
