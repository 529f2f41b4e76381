"""A writer killed with SIGKILL leaves a run that verifies as truncated, never OK, and never breaks
the verification of the runs after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from runbook.audit.chain import last_valid
from runbook.audit.keys import AllowedSigners, Signer
from runbook.audit.verify import verify_directory

from .helpers import records, run_file, write_run

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    from runbook.audit.writer import AuditWriter
    from runbook.execute.events import Event

    directory, key = sys.argv[1], sys.argv[2]
    w = AuditWriter(directory, signing_key=key, seal_records=7)
    w(Event("run.start", "victim", data={"operator": {"user": "u", "host": "h"}}))
    i = 0
    while True:
        i += 1
        w(Event("step.start", "victim", host="h", step=f"s{i}", phase="steps"))
        w(Event("step.output", "victim", host="h", step=f"s{i}", data={"line": "x" * 300}))
        w(Event("step.end", "victim", host="h", step=f"s{i}", phase="steps", outcome="ok", rc=0, duration=0.1))
        if i == 20:
            print("ready", flush=True)
    """
)


def _kill_writer_midway(directory: Path, key: Signer) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), key.path],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_reports_truncation_and_later_runs_still_chain(
    tmp_path: Path, key: Signer, trust: AllowedSigners
) -> None:
    d = tmp_path / "audit"
    write_run(d, "before", key)
    _kill_writer_midway(d, key)
    victim = run_file(d, "victim")
    tail = last_valid(victim)
    assert tail is not None and tail.run_id == "victim" and tail.seq > 60
    write_run(d, "after", key)  # the directory lock died with the killed process
    assert records(run_file(d, "after"))[0]["prev"] == tail.hash

    report = verify_directory(d, trust)
    assert not report.ok
    msgs = report.all_problems()
    assert len(msgs) == 1
    assert msgs[0].startswith(f"run victim truncated after record {tail.seq} (no final seal")
    assert "covered by a valid seal" in msgs[0]
    before, victim_report, after = report.runs
    assert before.ok and after.ok and not victim_report.ok


def test_partial_last_line_from_a_crash(tmp_path: Path, key: Signer, trust: AllowedSigners) -> None:
    d = tmp_path / "audit"
    write_run(d, "first", key)
    path = run_file(d, "first")
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    # lose the final seal and run.end, keep half a line, as after a crash mid-write
    path.write_bytes(b"".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2])
    write_run(d, "second", key)
    assert records(run_file(d, "second"))[0]["prev"] == records_hash(lines[-3])
    report = verify_directory(d, trust)
    (msg,) = report.all_problems()
    n = len(lines) - 2
    assert (
        msg
        == f"run first truncated after record {n} (no final seal; last line is partial (write interrupted))"
    )
    assert report.runs[1].ok


def records_hash(line: bytes) -> str:
    import json

    return json.loads(line)["hash"]
