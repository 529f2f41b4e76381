"""Record-level tampering and corruption of a real signed trail: verify fails and names the record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Pristine
from .helpers import failed, line_of, lines, put, records, rehash_from, runs, verify

Lines = list[bytes]


def _edit(n: int, old: bytes, new: bytes) -> Callable[[Lines], Lines]:
    def mutate(ls: Lines) -> Lines:
        assert old in ls[n - 1], (old, ls[n - 1])
        ls[n - 1] = ls[n - 1].replace(old, new, 1)
        return ls

    return mutate


def _rec(n: int, change: Callable[[dict], object], rehash: bool = True) -> Callable[[Lines], Lines]:
    """Parse record n, change it, write it back canonically (hash recomputed unless rehash=False)."""

    def mutate(ls: Lines) -> Lines:
        rec = json.loads(ls[n - 1])
        change(rec)
        ls[n - 1] = line_of(rec) if rehash else (json.dumps(rec, separators=(",", ":")) + "\n").encode()
        return ls

    return mutate


def _raw(n: int, text: bytes) -> Callable[[Lines], Lines]:
    def mutate(ls: Lines) -> Lines:
        ls[n - 1] = text
        return ls

    return mutate


def _set(key: str, value: object) -> Callable[[dict], object]:
    return lambda rec: rec.__setitem__(key, value)


def _reorder_keys(ls: Lines) -> Lines:
    rec = json.loads(ls[4])
    ls[4] = (
        json.dumps(dict(reversed(rec.items())), ensure_ascii=False, separators=(",", ":")) + "\n"
    ).encode()
    return ls


def _hash_moved_last(ls: Lines) -> Lines:
    rec = json.loads(ls[4])
    h = rec.pop("hash")
    text = json.dumps(rec, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    ls[4] = (text[:-1] + f',"hash":"{h}"}}\n').encode()
    return ls


# (id, mutation of the middle run's lines, expected problem text with R = that run's id)
CASES: list[tuple[str, Callable[[Lines], Lines], str]] = [
    ("value changed", _edit(5, b'"outcome":"changed"', b'"outcome":"failed!"'), "run R: record 5 altered (hash mismatch)"),
    ("rc changed, hash recomputed", _rec(5, _set("rc", 1)), "run R: record 6: chain broken (prev does not match record 5's hash)"),
    ("ts as a number", _rec(5, _set("ts", 1700000000)), "run R: record 6: chain broken (prev does not match record 5's hash)"),
    ("ts as a number, hash kept", _rec(5, _set("ts", 1700000000), rehash=False), "run R: record 5 altered (hash mismatch)"),
    ("seq as a string", _rec(5, _set("seq", "5"), rehash=False), "run R: line 5 is not an audit record (seq must be an integer, not string)"),
    ("seq as a float", _edit(5, b'"seq":5', b'"seq":5.0'), "run R: line 5 is not an audit record (seq must be an integer, not float)"),
    ("seq as true", _edit(5, b'"seq":5', b'"seq":true'), "run R: line 5 is not an audit record (seq must be an integer, not bool)"),
    ("seq zero", _edit(5, b'"seq":5', b'"seq":0'), "run R: line 5 is not an audit record (seq 0 is not a positive number)"),
    ("seq negative", _edit(5, b'"seq":5', b'"seq":-5'), "run R: line 5 is not an audit record (seq -5 is not a positive number)"),
    ("seq huge", _edit(5, b'"seq":5', b'"seq":' + b"9" * 40), "run R: records 5-" + "9" * 39 + "8 missing (seq jumps 4 -> " + "9" * 40 + ")"),
    ("hash not hex", _rec(5, _set("hash", "z" * 64), rehash=False), "run R: record 5 altered (its hash is not a SHA-256 hex digest)"),
    ("hash upper case", lambda ls: _rec(5, lambda r: r.__setitem__("hash", r["hash"].upper()), rehash=False)(ls), "run R: record 5 altered (its hash is not a SHA-256 hex digest)"),
    ("hash missing", _rec(5, lambda r: r.pop("hash"), rehash=False), "run R: line 5 is not an audit record (missing seq/hash/prev/event/run_id)"),
    ("prev missing", _rec(5, lambda r: r.pop("prev")), "run R: line 5 is not an audit record (missing seq/hash/prev/event/run_id)"),
    ("event null", _rec(5, _set("event", None)), "run R: line 5 is not an audit record (event must be a string, not null)"),
    ("run_id number", _rec(5, _set("run_id", 7)), "run R: line 5 is not an audit record (run_id must be a string, not int)"),
    ("duplicate key seq", _edit(5, b'"seq":5', b'"seq":1,"seq":5'), 'run R: record 5 altered (not in canonical form: duplicate key "seq"'),
    ("duplicate key outcome", _edit(5, b'"outcome":"changed"', b'"outcome":"failed","outcome":"changed"'), 'run R: record 5 altered (not in canonical form: duplicate key "outcome"'),
    ("nested duplicate key", _edit(5, b'"attempts":1', b'"attempts":9,"attempts":1'), 'run R: record 5 altered (not in canonical form: duplicate key "attempts"'),
    ("unicode escape", _edit(5, "é".encode(), b"\\u00e9"), "run R: record 5 altered (not in canonical form: escape sequences"),
    ("escaped slash", _edit(1, b"/", b"\\/"), "run R: record 1 altered (not in canonical form: escape sequences"),
    ("keys reordered", _reorder_keys, "run R: record 5 altered (not in canonical form: members not in sorted key order)"),
    ("hash member moved", _hash_moved_last, "run R: record 5 altered (not in canonical form: members not in sorted key order)"),
    ("space after colon", _edit(5, b'"rc":0', b'"rc": 0'), "run R: record 5 altered (not in canonical form: insignificant whitespace)"),
    ("trailing spaces", _edit(5, b"}\n", b"}  \n"), "run R: record 5 altered (not in canonical form: whitespace around the record)"),
    ("leading tab", _edit(5, b"{", b"\t{"), "run R: record 5 altered (not in canonical form: whitespace around the record)"),
    ("CRLF on one line", _edit(5, b"}\n", b"}\r\n"), "run R: record 5 altered (not in canonical form: CRLF line ending)"),
    ("rc written 0.0", _edit(5, b'"rc":0', b'"rc":0.0'), "run R: record 5 altered (hash mismatch)"),
    ("rc written -0", _edit(5, b'"rc":0', b'"rc":-0'), "run R: record 5 altered (not in canonical form: the number -0"),
    ("NaN", _edit(5, b'"rc":0', b'"rc":NaN'), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("Infinity", _edit(5, b'"rc":0', b'"rc":-Infinity'), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("non-UTF-8 byte", _edit(5, "é".encode(), b"\xe9"), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("lone surrogate escape", _edit(5, "é".encode(), b"\\udce9"), "run R: record 5 altered"),
    ("not JSON", _raw(5, b"hello auditor\n"), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("JSON array", _raw(5, b"[1,2,3]\n"), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("JSON number", _raw(5, b"42\n"), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("JSON null", _raw(5, b"null\n"), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("JSON string", _raw(5, b'"seq"\n'), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("empty object", _raw(5, b"{}\n"), "run R: line 5 is not an audit record (missing seq/hash/prev/event/run_id)"),
    ("deeply nested", _raw(5, b"[" * 5000 + b"]" * 5000 + b"\n"), "run R: line 5 is not a valid JSON record (corrupted)"),
    ("blank line inserted", lambda ls: [*ls[:5], b"\n", *ls[5:]], "run R: line 6 is blank"),
    ("whitespace line inserted", lambda ls: [*ls[:5], b" \t\r\n", *ls[5:]], "run R: line 6 is blank"),
    ("record deleted", lambda ls: [*ls[:4], *ls[5:]], "run R: record 5 missing (seq jumps 4 -> 6)"),
    ("first record deleted", lambda ls: ls[1:], "run R: record 1 missing (run starts at record 2)"),
    ("record duplicated", lambda ls: [*ls[:5], ls[4], *ls[5:]], "run R: record 5 duplicated (found after record 5)"),
    ("records swapped", lambda ls: [*ls[:4], ls[5], ls[4], *ls[6:]], "run R: records 5 and 6 reordered"),
    ("earlier record moved later", lambda ls: [*ls[:2], *ls[3:6], ls[2], *ls[6:]], "run R: record 3 out of order (found after record 6)"),
    ("forged record inserted", lambda ls: [*ls[:5], _fake(ls[4]), *ls[5:]], "run R: record 5 duplicated (found after record 5)"),
    ("final seal deleted", lambda ls: ls[:-1], "run R truncated after record 8 (no final seal)"),
    ("run cut after record 6", lambda ls: ls[:6], "run R truncated after record 6 (no final seal)"),
    ("last line half written", lambda ls: [*ls[:-1], ls[-1][: len(ls[-1]) // 2]], "run R truncated after record 8 (no final seal; last line is partial"),
    ("final newline removed", lambda ls: [*ls[:-1], ls[-1][:-1]], "run R: record 9: line cut off before its newline (file truncated?)"),
    ("trailing garbage line", lambda ls: [*ls, b"garbage\n"], "run R: line 10 is not a valid JSON record (corrupted)"),
    ("trailing garbage, no newline", lambda ls: [*ls, b"\x00\x00\x00"], "run R: a partial line follows the final seal"),
    ("record after the final seal", lambda ls: [*ls, _renumbered(ls[4], 10, ls[-1])], "run R: record 10 follows the final seal (record 9)"),
    ("all CRLF", lambda ls: [x.replace(b"\n", b"\r\n") for x in ls], "run R: record 9 altered (not in canonical form: CRLF line ending)"),
    ("UTF-8 BOM", lambda ls: [b"\xef\xbb\xbf" + ls[0], *ls[1:]], "run R: line 1 is not a valid JSON record (corrupted)"),
]  # fmt: skip


def _fake(line: bytes) -> bytes:
    rec = json.loads(line)
    rec["outcome"] = "ok"
    return line_of(rec)


def _renumbered(line: bytes, seq: int, prev_line: bytes) -> bytes:
    rec = json.loads(line)
    rec["seq"], rec["prev"] = seq, json.loads(prev_line)["hash"]
    return line_of(rec)


@pytest.mark.parametrize("mutate, expected", [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_tampered_record(
    trail: Path, pristine: Pristine, mutate: Callable[[Lines], Lines], expected: str
) -> None:
    path = runs(trail)[1]
    run_id = records(path)[0]["run_id"]
    put(path, mutate(lines(path)))
    out = failed(trail, pristine.signers)
    assert expected.replace("run R", f"run {run_id}") in out, out
    assert "Traceback" not in out


def test_pristine_trail_verifies(trail: Path, pristine: Pristine) -> None:
    out = verify(trail, pristine.signers)
    assert out.exit_code == 0, out.output
    assert "OK: 3 run(s), 27 records verified" in out.output
    assert out.output.count("signed by ops@example.com") == 3


def test_smart_attacker_rehashes_and_rechains_the_rest_without_the_key(
    trail: Path, pristine: Pristine
) -> None:
    """Every hash and link is consistent again; only the seal's signature (and the next run) can tell."""
    path = runs(trail)[1]
    recs = records(path)
    run_id = recs[0]["run_id"]
    recs[4]["outcome"] = "ok"
    put(path, rehash_from(recs, 4))
    out = failed(trail, pristine.signers)
    assert f"run {run_id}: seal at record 9: bad signature" in out
    assert f"run {run_id} was altered after run {records(runs(trail)[2])[0]['run_id']} was written" in out
    assert "altered (hash mismatch)" not in out  # the attacker's hashes are all consistent


def test_attacker_strips_the_signatures(trail: Path, pristine: Pristine) -> None:
    path = runs(trail)[2]
    recs = records(path)
    for r in recs:
        for k in ("key_id", "public_key", "sig"):
            r.pop(k, None)
    put(path, rehash_from(recs, 0))
    out = failed(trail, pristine.signers)
    assert f"run {recs[0]['run_id']}: unsigned (no signing key was configured when it was written)" in out


def test_attacker_resigns_with_own_key(trail: Path, pristine: Pristine) -> None:
    from runbook.audit.keys import load_signing_key
    from tests.audit.helpers import rechain

    path = runs(trail)[2]
    recs = records(path)
    recs[4]["rc"] = 0 if recs[4]["rc"] else 1
    mallory = load_signing_key(pristine.other_key)
    put(path, rechain(recs, mallory))
    out = failed(trail, pristine.signers)
    assert f"run {recs[0]['run_id']}: seal at record 9 signed by untrusted key {mallory.key_id}" in out


def test_seal_copied_from_another_run(trail: Path, pristine: Pristine) -> None:
    a, b = runs(trail)[0], runs(trail)[1]
    ls = lines(b)
    seal = json.loads(lines(a)[-1])  # validly signed, but for run A's head, run id and seq
    run_id = json.loads(ls[0])["run_id"]
    put(b, [*ls[:-1], lines(a)[-1]])
    out = failed(trail, pristine.signers)
    assert f"run {run_id}: record 9 (line 9) belongs to another run ({seal['run_id']})" in out
    seal["run_id"], seal["prev"] = run_id, json.loads(ls[-2])["hash"]
    seal["head"] = seal["prev"]
    put(b, [*ls[:-1], line_of(seal)])  # made to fit: run id and head rewritten, hash recomputed
    out = failed(trail, pristine.signers)
    assert f"run {run_id}: seal at record 9: bad signature" in out


def test_seal_made_non_final(trail: Path, pristine: Pristine) -> None:
    path = runs(trail)[0]
    recs = records(path)
    recs[-1]["final"] = False
    put(path, [*lines(path)[:-1], line_of(recs[-1])])
    out = failed(trail, pristine.signers)
    assert f"run {recs[0]['run_id']} truncated after record 9 (no final seal)" in out
