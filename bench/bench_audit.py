"""Audit trail throughput: append + hash + sign (with periodic seals), and verify.

    python bench/bench_audit.py [--records 200000] [--seal-records 1000]

Targets: append >= 20,000 records/s (hashing and periodic Ed25519 seals included; fsync only at
step boundaries), verify >= 100,000 records/s. Events are built before timing (the engine builds
them anyway); the figures are the writer's and the verifier's own cost.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runbook.audit.keys import AllowedSigners, generate_key
from runbook.audit.verify import verify_directory
from runbook.audit.writer import AuditWriter
from runbook.execute.events import Event, EventBus


def events(run_id: str, n: int, outputs_per_step: int) -> list[Event]:
    """A run of ~n records: per step one step.start, `outputs_per_step` step.output, one step.end."""
    out = [Event("run.start", run_id, data={"runbook": "bench", "operator": {"user": "b", "host": "h"}})]
    step = 0
    while len(out) < n - 1:
        step += 1
        host, name = f"web{step % 50}", f"step {step}"
        out.append(Event("step.start", run_id, host=host, step=name, phase="steps", data={"module": "shell"}))
        for i in range(outputs_per_step):
            out.append(Event("step.output", run_id, host=host, step=name, data={"line": f"line {i} " * 8}))
        out.append(
            Event(
                "step.end",
                run_id,
                host=host,
                step=name,
                phase="steps",
                outcome="changed",
                rc=0,
                duration=0.123456,
                data={"msg": "ok", "command": "systemctl restart app", "stdout": "x" * 200, "stderr": ""},
            )
        )
    out.append(Event("run.end", run_id, outcome="success", data={"exit_code": 0}))
    return out


def bench_append(directory: Path, key: Path, evs: list[Event], *, fsync: bool, seal_records: int) -> float:
    writer = AuditWriter(directory, signing_key=key, seal_records=seal_records, fsync=fsync)
    bus = EventBus()  # as in a run: the bus calls the writer, then its barrier (the boundary fsync)
    bus.subscribe(writer)
    t = time.perf_counter()
    for e in evs:
        bus.emit(e)
    writer.close()
    elapsed = time.perf_counter() - t
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--seal-records", type=int, default=1000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        signer = generate_key(tmp / "key", "bench@local")
        trust = AllowedSigners.parse(signer.public_line)
        ok = True
        cases = [
            ("append+sign, 8 output lines/step, fsync at step boundaries", 8, True),
            ("append+sign, 2 output lines/step, fsync at step boundaries", 2, True),
            ("append+sign, no fsync (CPU cost of hashing+canonical JSON+signing)", 2, False),
        ]
        for i, (label, per_step, fsync) in enumerate(cases):
            evs = events(f"bench-{i}", args.records, per_step)
            elapsed = bench_append(
                tmp / f"audit{i}", tmp / "key", evs, fsync=fsync, seal_records=args.seal_records
            )
            rate = len(evs) / elapsed
            target = "" if i else ("  (target >= 20,000/s: " + ("met" if rate >= 20_000 else "MISSED") + ")")
            ok = ok and (rate >= 20_000 or i > 0)
            print(f"{label}: {len(evs):,} records in {elapsed:.2f}s = {rate:,.0f} records/s{target}")
        t = time.perf_counter()
        report = verify_directory(tmp / "audit0", trust)
        elapsed = time.perf_counter() - t
        rate = report.records / elapsed
        status = "met" if rate >= 100_000 else "MISSED"
        print(
            f"verify (hashes, links, {sum(r.seals for r in report.runs)} signatures): {report.records:,} records "
            f"in {elapsed:.2f}s = {rate:,.0f} records/s (target >= 100,000/s: {status}); ok={report.ok}"
        )
        ok = ok and report.ok and rate >= 100_000
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
