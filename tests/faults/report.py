"""Run the fault-injection matrix and write its table into docs/fault-matrix.md.

    python3 tests/faults/report.py                 # the CI matrix (what `pytest tests/faults` runs)
    python3 tests/faults/report.py --full          # every point, both recoveries, locally and over SSH
    python3 tests/faults/report.py --from rows.jsonl   # only rewrite the table from a previous run
    python3 tests/faults/report.py -- -k smoke     # extra pytest arguments after --

Each test appends its rows (runbook, transport, point, recovery, restored, seconds to healthy, what
differed) to $RUNBOOK_FAULT_MATRIX_OUT (tests/faults/conftest.py); the table counts, per runbook,
transport and kind of fault, the points tried, the ones that restored the exact previous state, and
the time from the fault to healthy (median and worst). Points that did not restore are listed with
what was found. The text between the two markers of the document is replaced; the rest is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "fault-matrix.md"
BEGIN, END = "<!-- matrix:begin (tests/faults/report.py) -->", "<!-- matrix:end -->"


def run(full: bool, extra: list[str]) -> tuple[Path, int]:
    out = Path(tempfile.mkstemp(prefix="fault-matrix-", suffix=".jsonl")[1])
    env = {**os.environ, "RUNBOOK_FAULT_MATRIX_OUT": str(out), "PYTHONPATH": str(REPO)}
    if full:
        env["RUNBOOK_FAULT_MATRIX"] = "full"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults", *extra]
    rc = subprocess.run(argv, cwd=REPO, env=env).returncode
    return out, rc


def kind(row: dict[str, Any]) -> str:
    if row["where"] in ("boundary", "inside"):
        where = "at a step boundary" if row["where"] == "boundary" else "inside a step"
        return f"kill {where}, then {row['recovery']}"
    return {"disk": "state/audit disk full or read-only", "repeat": "failed attempts in a row",
            "load": "200 MB of step output", "network": "frozen sshd / blackhole"}.get(row["where"], row["where"])  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["runbook"], r["transport"], kind(r))].append(r)
    lines = [
        "| runbook | via | fault | points tried | restored | time to healthy (median / worst) |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for (rb, via, what), rs in sorted(groups.items()):
        times = [r["seconds_to_healthy"] for r in rs if r["restored"] and r["seconds_to_healthy"] is not None]
        t = f"{statistics.median(times):.1f} s / {max(times):.1f} s" if times else "-"
        lines.append(f"| {rb} | {via} | {what} | {len(rs)} | {sum(r['restored'] for r in rs)} | {t} |")
    total = len(rows), sum(r["restored"] for r in rows)
    lines.append(f"| **all** | | | **{total[0]}** | **{total[1]}** | |")
    bad = [r for r in rows if not r["restored"]]
    if bad:
        lines += ["", "Points that did not restore the previous state:", "",
                  "| runbook | via | point | recovery | exit | found |", "| --- | --- | --- | --- | ---: | --- |"]  # fmt: skip
        for r in bad:
            found = r["detail"].replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(
                f"| {r['runbook']} | {r['transport']} | {r['point']} | {r['recovery']} | {r['rc']} | {found} |"
            )
    return "\n".join(lines)


def write(rows: list[dict[str, Any]], label: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Fault-injection matrix\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    body = f"{BEGIN}\n_{label}_\n\n{table(rows)}\n{END}"
    DOC.write_text(head + body + tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="every point, both recoveries, local and SSH")
    ap.add_argument("--from", dest="rows", type=Path, help="rewrite the table from this JSON Lines file")
    ap.add_argument("pytest_args", nargs="*")
    a = ap.parse_args()
    rc = 0
    path = a.rows
    if path is None:
        path, rc = run(a.full, a.pytest_args)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    label = ("full matrix" if a.full else "CI matrix") + f" (`{' '.join(['report.py', *sys.argv[1:]])}`)"
    write(rows, label)
    print(table(rows))
    return rc


if __name__ == "__main__":
    sys.exit(main())
