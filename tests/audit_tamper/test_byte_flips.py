"""Flip bytes of a real signed trail: every position of a record, every field, several bit masks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runbook.audit.keys import AllowedSigners
from runbook.audit.verify import verify_directory

from .conftest import Pristine
from .helpers import failed, lines, runs

# record 1 = run.start (signer header), 5 = step.end (non-ASCII command, digests), 9 = the final seal
RECORDS = [1, 5, 9]


def _flipped(original: bytes, start: int, pos: int, mask: int) -> bytes:
    data = bytearray(original)
    data[start + pos] ^= mask
    return bytes(data)


def _mentions(problems: list[str], n: int) -> bool:
    return any(re.search(rf"\b(record|line|records \d+-|records \d+ and) ?{n}\b", p) for p in problems)


@pytest.mark.parametrize("n", RECORDS)
def test_every_byte_of_a_record_flipped(trail: Path, pristine: Pristine, n: int) -> None:
    trust = AllowedSigners.load(pristine.signers)
    path = runs(trail)[1]
    original = path.read_bytes()
    start = sum(len(x) for x in lines(path)[: n - 1])
    length = len(lines(path)[n - 1]) - 1  # not the newline
    tried = 0
    for pos in range(length):
        for mask in (0x01, 0x20, 0x80) if pos % 5 == 0 else (0x01,):
            path.write_bytes(_flipped(original, start, pos, mask))
            report = verify_directory(trail, trust)
            problems = report.all_problems()
            assert not report.ok, (pos, mask)
            assert _mentions(problems, n), (pos, mask, problems)
            tried += 1
    path.write_bytes(original)
    assert verify_directory(trail, trust).ok and tried > length


def _field_span(line: bytes, key: str) -> tuple[int, int]:
    """Byte range of the value of top-level ``key`` in a canonical line."""
    i = line.index(b'"' + key.encode() + b'":') + len(key) + 3
    rec = json.loads(line)
    value = json.dumps(rec[key], ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    assert line[i : i + len(value)] == value
    return i, i + len(value)


FIELDS = [
    (1, "seq"), (1, "prev"), (1, "hash"), (1, "key_id"), (1, "public_key"), (1, "data"), (1, "format"),
    (5, "seq"), (5, "ts"), (5, "event"), (5, "run_id"), (5, "command"), (5, "outcome"), (5, "rc"),
    (5, "duration"), (5, "stdout_sha256"), (5, "prev"), (5, "hash"), (5, "host"),
    (9, "sig"), (9, "head"), (9, "final"), (9, "key_id"), (9, "prev"), (9, "hash"), (9, "seq"),
]  # fmt: skip


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("n, key", FIELDS)
def test_a_flipped_byte_in_each_field_fails_verify_by_cli(
    trail: Path, pristine: Pristine, n: int, key: str, where: str
) -> None:
    path = runs(trail)[2]
    ls = lines(path)
    a, b = _field_span(ls[n - 1], key)
    if ls[n - 1][a : a + 1] == b'"':
        a, b = a + 1, b - 1  # inside the string
    pos = {"first": a, "middle": (a + b) // 2, "last": b - 1}[where]
    data = bytearray(ls[n - 1])
    data[pos] ^= 0x01
    ls[n - 1] = bytes(data)
    path.write_bytes(b"".join(ls))
    out = failed(trail, pristine.signers)
    assert _mentions(out.splitlines(), n), out
