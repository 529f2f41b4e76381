from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from runbook.audit.canonical import dumps
from runbook.audit.keys import AllowedSigners, Signer
from runbook.audit.records import GENESIS, seal_payload
from runbook.audit.verify import verify_directory
from runbook.audit.writer import AuditWriter
from runbook.errors import AuditError
from runbook.execute.events import Event, EventBus

from .helpers import records, run_events, write_run


def test_record_format_and_chain(tmp_path: Path, key: Signer) -> None:
    path = write_run(tmp_path / "audit", "r1", key)
    assert path.parent == tmp_path / "audit"
    assert path.name.endswith("_r1.jsonl") and path.name[:8].isdigit()
    recs = records(path)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    first = recs[0]
    assert first["event"] == "run.start" and first["prev"] == GENESIS and "prev_run" not in first
    assert first["key_id"] == key.key_id and first["public_key"] == key.public_line
    assert first["format"] == "runbook-audit/1"
    assert first["data"]["operator"] == {"user": "alice", "host": "laptop"}
    assert first["data"]["git_commit"] == "0123abcd"
    assert first["ts"].endswith("Z")
    for prev, rec in itertools.pairwise(recs):
        assert rec["prev"] == prev["hash"]
    for rec, line in zip(recs, path.read_bytes().splitlines(), strict=True):
        body = {k: v for k, v in rec.items() if k != "hash"}
        assert rec["hash"] == hashlib.sha256(dumps(body).encode()).hexdigest()
        assert line.decode() == dumps(rec)  # lines are canonical JSON themselves
    end = next(r for r in recs if r["event"] == "step.end")
    assert end["duration"] == "0.250000" and end["rc"] == 0 and end["command"] == "echo 0"
    assert end["stdout_sha256"] == hashlib.sha256(b"0\n").hexdigest()
    assert end["stderr_sha256"] == hashlib.sha256(b"").hexdigest()
    assert "stdout" not in end and "stdout" not in end.get("data", {})
    assert recs[-2]["event"] == "run.end" and recs[-2]["outcome"] == "success"
    seal = recs[-1]
    assert seal["event"] == "seal" and seal["final"] is True and seal["head"] == recs[-2]["hash"]
    payload = seal_payload("r1", seal["seq"], seal["head"], True)
    want = f'{{"final":true,"head":"{seal["head"]}","run_id":"r1","seq":{seal["seq"]},"type":"runbook-audit-seal/1"}}'
    assert payload == want.encode()
    assert AllowedSigners.parse(key.public_line).keys[key.key_id].verify(seal["sig"], payload)


def test_runs_chain_across_files(tmp_path: Path, key: Signer, trust: AllowedSigners) -> None:
    a = write_run(tmp_path, "run-a", key)
    b = write_run(tmp_path, "run-b", key)
    assert a.name < b.name
    first_b = records(b)[0]
    assert first_b["prev"] == records(a)[-1]["hash"]
    assert first_b["prev_run"] == {"run_id": "run-a", "final_hash": records(a)[-1]["hash"]}
    report = verify_directory(tmp_path, trust)
    assert report.ok, report.all_problems()
    assert [r.run_id for r in report.runs] == ["run-a", "run-b"]


def test_periodic_seals(tmp_path: Path, key: Signer, trust: AllowedSigners) -> None:
    path = write_run(tmp_path, "r", key, steps=10, seal_records=5)
    seals = [r for r in records(path) if r["event"] == "seal"]
    assert len(seals) > 3 and [s["final"] for s in seals].count(True) == 1 and seals[-1]["final"]
    assert verify_directory(tmp_path, trust).ok


def test_time_based_seal(tmp_path: Path, key: Signer) -> None:
    path = write_run(tmp_path, "r", key, seal_every=0)
    recs = records(path)
    assert sum(r["event"] == "seal" for r in recs) >= len(recs) // 2 - 1


def test_unsigned_mode_still_chains(tmp_path: Path) -> None:
    path = write_run(tmp_path, "r", None)
    recs = records(path)
    assert "key_id" not in recs[0] and recs[-1]["event"] == "seal" and "sig" not in recs[-1]
    report = verify_directory(tmp_path, None)
    assert not report.ok and "unsigned" in report.all_problems()[0]
    assert verify_directory(tmp_path, None, allow_unsigned=True).ok


def test_close_without_run_end_writes_end_and_final_seal(
    tmp_path: Path, key: Signer, trust: AllowedSigners
) -> None:
    writer = AuditWriter(tmp_path, signing_key=key)
    for event in run_events("r", 2)[:4]:
        writer(event)
    writer.close(reason="interrupted")
    writer.close()  # idempotent
    recs = records(writer.path)
    assert recs[-2]["event"] == "run.end" and recs[-2]["outcome"] == "interrupted"
    assert recs[-1]["final"] is True
    report = verify_directory(tmp_path, trust)
    assert report.ok and report.runs[0].outcome == "interrupted"
    assert any("interrupted" in n for n in report.runs[0].notes)


def test_bus_integration_and_events_after_close(tmp_path: Path, key: Signer) -> None:
    bus = EventBus()
    writer = AuditWriter(tmp_path, signing_key=key)
    bus.subscribe(writer)
    for event in run_events("r", 1):
        bus.emit(event)
    bus.emit(Event("step.output", "r", data={"line": "late"}))  # after run.end: dropped
    bus.close()
    bus.emit(Event("run.start", "r2"))  # after close: dropped
    recs = records(writer.path)
    assert recs[-1]["event"] == "seal" and len(list(tmp_path.glob("*.jsonl"))) == 1


def test_unknown_event_kinds_and_odd_values(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path)
    writer(Event("run.start", "r"))
    writer(
        Event(
            "custom.thing",
            "r",
            data={
                "f": 1.5,
                "nan": float("nan"),
                "big": 2**70,
                "t": (1, 2),
                "s": {3, 1},
                "b": b"\x01",
                "o": object,
                "u": "é\ud800",
                "command": ["ls", "-l"],
            },
        )
    )
    writer(Event("step.output", "r", host="h", data={"line": "out"}))
    writer.close("success")
    recs = records(writer.path)
    data = recs[1]["data"]
    assert data["f"] == "1.500000" and data["nan"] is None and data["big"] == str(2**70)
    assert data["t"] == [1, 2] and data["s"] == [1, 3] and data["b"] == "01" and data["u"] == "é\ufffd"
    assert recs[1]["command"] == ["ls", "-l"]
    assert recs[2]["data"] == {"line_sha256": hashlib.sha256(b"out").hexdigest()}
    assert verify_directory(tmp_path, None, allow_unsigned=True).ok


def test_second_run_id_starts_a_new_chained_file(tmp_path: Path, key: Signer, trust: AllowedSigners) -> None:
    writer = AuditWriter(tmp_path, signing_key=key)
    for event in run_events("a", 1)[:3] + run_events("b", 1):
        writer(event)
    writer.close()
    assert len(writer.paths) == 2
    assert records(writer.paths[0])[-1]["final"] is True
    assert verify_directory(tmp_path, trust).ok


def test_directory_lock(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path)
    with pytest.raises(AuditError, match="in use by another runbook process"):
        AuditWriter(tmp_path)
    writer.close()
    AuditWriter(tmp_path).close()


def test_file_mode_and_key_errors(tmp_path: Path, key: Signer) -> None:
    path = write_run(tmp_path / "a", "r", key)
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0
    with pytest.raises(AuditError, match="cannot read audit signing key") as exc:
        AuditWriter(tmp_path / "b", signing_key=tmp_path / "missing")
    assert "keygen" in str(exc.value)


def test_sink_receives_records_and_a_failing_sink_is_recorded(tmp_path: Path, key: Signer) -> None:
    class Memory:
        def __init__(self) -> None:
            self.lines: list[bytes] = []
            self.synced = 0

        def write(self, record: object, line: bytes) -> None:
            self.lines.append(line)

        def sync(self) -> None:
            self.synced += 1

        def close(self) -> None:
            pass

    class Broken(Memory):
        def sync(self) -> None:
            raise OSError("database went away")

    good = Memory()
    path = write_run(tmp_path, "r", key, sinks=[good, Broken()])
    assert b"".join(good.lines) == path.read_bytes() and good.synced > 0
    errors = [r for r in records(path) if r["event"] == "audit.sink_error"]
    assert len(errors) == 1 and errors[0]["data"]["sink"] == "Broken"


CANARY = "CANARY-9f8e7d-secret"


def test_canary_secret_never_reaches_the_audit(tmp_path: Path, key: Signer) -> None:
    writer = AuditWriter(tmp_path, signing_key=key, redact=lambda s: s.replace(CANARY, "***"))
    writer(
        Event(
            "run.start",
            "r",
            data={
                "extra_vars": {
                    "db_password": CANARY,
                    "API_TOKEN": CANARY,
                    "nested": {"aws_secret_access_key": [CANARY], "Credentials": {"x": CANARY}},
                    "dsn": CANARY,
                    "db_url": f"postgresql://app:{CANARY}@db:5432/app",
                    "pgpass": CANARY,
                    "free_text": f"the password is {CANARY}",
                },
                "operator": {"user": "alice", "host": "h"},
            },
        )
    )
    writer(Event("step.start", "r", host="h", step=f"login {CANARY}", data={"command": f"mysql -p{CANARY}"}))
    writer(
        Event(
            "step.end",
            "r",
            host="h",
            step="s",
            outcome="ok",
            rc=0,
            data={"stdout": f"token={CANARY}", "msg": f"url https://u:{CANARY}@x/", "private_key": CANARY},
        )
    )
    writer.close("success")
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert CANARY.encode() not in blob
    rec = records(writer.path)[0]["data"]["extra_vars"]
    assert rec["db_password"] == "***" and rec["nested"]["aws_secret_access_key"] == "***"
    assert rec["db_url"] == "postgresql://app:***@db:5432/app"


def test_fsync_only_at_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    writer = AuditWriter(tmp_path, fsync_records=10_000)
    writer(Event("run.start", "r"))
    before = len(calls)
    for _ in range(50):
        writer(Event("step.output", "r", data={"line": "x"}))
    assert len(calls) == before  # no per-record fsync
    writer(Event("step.end", "r", outcome="ok"))
    writer.barrier()  # the EventBus calls it after releasing its lock
    assert len(calls) == before + 1
    writer.close()


def test_a_step_boundary_is_on_disk_before_emit_returns_with_many_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_size: dict[int, int] = {}  # inode -> file size at the latest fsync
    real = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        size = st.st_size
        real(fd)
        synced_size[st.st_ino] = max(synced_size.get(st.st_ino, 0), size)

    monkeypatch.setattr(os, "fsync", fsync)
    writer = AuditWriter(tmp_path, fsync_records=10_000)
    bus = EventBus()
    bus.subscribe(writer)
    bus.emit(Event("run.start", "r"))
    inode = os.stat(writer.path).st_ino
    not_durable: list[str] = []
    n_hosts, n_steps = 10, 20

    def host(name: str) -> None:
        for i in range(n_steps):
            bus.emit(Event("step.start", "r", host=name, step=f"s{i}"))
            bus.emit(Event("step.end", "r", host=name, step=f"s{i}", outcome="ok"))
            # the record this thread just wrote is on disk before emit returned
            # other threads may be mid-write: read only the complete lines
            done = writer.path.read_bytes().rpartition(b"\n")[0].splitlines()
            mine = [r for r in map(json.loads, done) if r.get("host") == name and r["event"] == "step.end"]
            end_of_mine = writer.path.read_bytes().index(json.dumps(mine[-1]["hash"]).encode())
            if synced_size.get(inode, 0) < end_of_mine:
                not_durable.append(f"{name} s{i}")

    threads = [threading.Thread(target=host, args=(f"h{n}",)) for n in range(n_hosts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close("success")
    assert not_durable == []
    report = verify_directory(tmp_path, None, allow_unsigned=True)
    assert report.ok and report.runs[0].records == 1 + 2 * n_hosts * n_steps + 2, report


def test_json_lines_are_single_writes(tmp_path: Path) -> None:
    path = write_run(tmp_path, "r", None)
    for line in path.read_bytes().splitlines():
        assert isinstance(json.loads(line), dict)
