from __future__ import annotations

import hashlib
import json

from runbook.audit.canonical import canonical_bytes, normalize
from runbook.audit.chain import check_line, record_hash, seal_line


def test_canonical_form() -> None:
    assert canonical_bytes({"b": 1, "a": [True, None, "é"], "c": {"z": 1, "y": 2}}) == (
        '{"a":[true,null,"é"],"b":1,"c":{"y":2,"z":1}}'.encode()
    )
    assert canonical_bytes('tab\t"quote" \u2028 \x01') == b'"tab\\t\\"quote\\" \xe2\x80\xa8 \\u0001"'
    assert (
        normalize(0.1) == "0.100000"
        and normalize(2**53) == 2**53
        and normalize(-(2**53) - 1) == "-9007199254740993"
    )


def test_seal_line_and_fast_check_agree_with_slow_path() -> None:
    body = {
        "event": "x",
        "data": {"hash": "nested is fine", "k": ',"hash":"fake"'},
        "seq": 1,
        "prev": "0" * 64,
    }
    digest, line = seal_line(dict(body))
    rec = json.loads(line)
    assert rec["hash"] == digest == record_hash(rec)
    assert digest == hashlib.sha256(canonical_bytes(body)).hexdigest()
    assert check_line(line.strip(), rec) == digest
    pretty = json.dumps(rec, indent=2).encode()  # reformatted by a tool: slow path still verifies
    assert check_line(pretty, json.loads(pretty)) == digest
    forged = dict(rec, seq=2)
    assert check_line(json.dumps(forged).encode(), forged) != digest
