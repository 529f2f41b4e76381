#!/usr/bin/env python3
"""Static planning speed: `runbook validate NAME -i <N-host inventory>` (load the runbook, read the
inventory, select hosts, check module arguments and templates, render every step for every host with
StrictUndefined), cold process start, median of several runs. Target (DESIGN §9): deploy-4gb against
1,000 hosts in <= 1 s. Also reports the same check through the Python API in one warm process
(`runbook.validate`, the session layer the CLI uses: the check without the process start) and the
CLI's cold start (`--help`, `--version`; target <= 150 ms).

    python3 bench/bench_plan.py [--runbook deploy-4gb] [--hosts 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_inventory(directory: Path, hosts: int, group: str) -> Path:
    inv = directory / "hosts"
    per = max(1, hosts // 4)
    lines = []
    for i in range(4):
        lines.append(f"[{group}_{i}]")
        lines.append(f"app{i}-[0001:{per:04d}] ansible_connection=local")
    lines.append(f"[{group}:children]")
    lines += [f"{group}_{i}" for i in range(4)]
    lines.append("[all:vars]\nregion=eu-west-1")
    inv.write_text("\n".join(lines) + "\n")
    local = ROOT / "inventories" / "local"
    for sub in ("group_vars", "host_vars"):
        src = local / sub
        if src.is_dir():
            shutil.copytree(src, directory / sub, dirs_exist_ok=True)
    gv = directory / "group_vars"
    if (gv / "all.yml").exists() and not (gv / f"{group}.yml").exists():
        pass
    return inv


def timed(cmd: list[str], runs: int) -> tuple[float, int]:
    times, rc = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        rc = proc.returncode
        if rc != 0:
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
    return statistics.median(times), rc


def in_process(runbook_name: str, inventory: Path, runs: int) -> tuple[float, bool]:
    """``runbook.validate`` through the session layer, in this process (the first call warms it up)."""
    import os

    sys.path.insert(0, str(ROOT))
    import runbook

    here = Path.cwd()
    os.chdir(ROOT)
    try:
        ok = runbook.validate(runbook_name, inventory=[str(inventory)]).ok
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            runbook.validate(runbook_name, inventory=[str(inventory)])
            times.append(time.perf_counter() - t)
    finally:
        os.chdir(here)
    return statistics.median(times), ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runbook", default="deploy-4gb")
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--group", default="app")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    exe = shutil.which("runbook") or sys.executable
    base = [exe] if exe.endswith("runbook") else [exe, "-m", "runbook"]
    with tempfile.TemporaryDirectory() as tmp:
        inv = write_inventory(Path(tmp), a.hosts, a.group)
        static, rc = timed([*base, "validate", a.runbook, "-i", str(inv)], a.runs)
        warm, ok = in_process(a.runbook, inv, a.runs)
        helps = timed([*base, "--help"], a.runs)[0]
        version = timed([*base, "--version"], a.runs)[0]
        imp = timed([sys.executable, "-c", "import paramiko"], a.runs)[0]
    print("| measure | median | target |")
    print("|---|---|---|")
    print(
        f"| validate {a.runbook} x {a.hosts} hosts (static plan) | {static * 1000:.0f} ms{f' (FAILED rc={rc})' if rc else ''} | <= 1000 ms |"
    )
    print(
        f"| runbook.validate({a.runbook!r}) x {a.hosts} hosts, warm, in-process (session layer) | {warm * 1000:.0f} ms{'' if ok else ' (PROBLEMS)'} | - |"
    )
    print(f"| runbook --help (cold) | {helps * 1000:.0f} ms | <= 150 ms |")
    print(f"| runbook --version (cold) | {version * 1000:.0f} ms | <= 150 ms |")
    print(f"| python -c 'import paramiko' (reference) | {imp * 1000:.0f} ms | - |")


if __name__ == "__main__":
    main()
