#!/usr/bin/env python3
"""Two trees' start-up CPU, paired: `python -c pass`, `runbook validate deploy-4gb -i
inventories/local` and `runbook plan` of bench_plan.py's 20-step local runbook, each run from the
console script with PYTHONPATH on one tree and then the other (the order alternating), user+sys of
each process; the code cache (runbook.render.codecache) in a scratch directory, warm after the first
run; the new tree also with RUNBOOK_CODE_CACHE=off. docs/performance.md, "Start-up cost".

    python3 bench/pair_start.py OLD_TREE [--rounds 15]   (OLD_TREE: e.g. `git archive main` unpacked)
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

NEW = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(NEW / "bench"))

from bench_plan import write_local_project  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("--rounds", type=int, default=15)
    a = ap.parse_args()
    old = a.old.resolve()
    for tree in (old, NEW):
        compileall.compile_dir(str(tree / "runbook"), quiet=1)
    script = Path(sys.executable).parent / "runbook"
    head = [sys.executable, str(script)] if script.is_file() else [sys.executable, "-m", "runbook"]
    tmp = Path(tempfile.mkdtemp(prefix="pair-start-"))
    rb, inv = write_local_project(tmp / "proj")
    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "validate deploy-4gb": ([*head, "validate", "deploy-4gb", "-i", "inventories/local"], None),
        "plan (20 steps)": ([*head, "plan", str(rb), "-i", str(inv)], tmp / "proj"),
    }

    def run(tree: Path, case: str, off: bool = False) -> float:
        argv, cwd = cases[case]
        env = {**os.environ, "PYTHONPATH": str(tree), "XDG_CACHE_HOME": str(tmp / "cache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if off:
            env["RUNBOOK_CODE_CACHE"] = "off"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(argv, cwd=cwd or tree, env=env, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{case} failed in {tree}: {proc.stdout[-500:]}{proc.stderr[-500:]}")
        return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000

    for case in cases:  # warm: page cache, code cache
        run(NEW, case), run(old, case)
    res: dict[tuple[str, str], list[float]] = {(t, c): [] for t in ("old", "new", "off") for c in cases}
    for i in range(a.rounds):
        for case in cases:
            order = [("old", old), ("new", NEW)] if i % 2 == 0 else [("new", NEW), ("old", old)]
            for name, tree in order:
                res[(name, case)].append(run(tree, case))
            res[("off", case)].append(run(NEW, case, off=True))
    print(f"{a.rounds} interleaved pairs, load average {os.getloadavg()[0]:.1f}, CPU ms (user+sys)")
    print("| command | old | new | paired difference | new lower | new, RUNBOOK_CODE_CACHE=off |")
    print("|---|---:|---:|---:|---:|---:|")
    for case in cases:
        o, n, f = res[("old", case)], res[("new", case)], res[("off", case)]
        d = [b - x for x, b in zip(o, n, strict=True)]
        print(
            f"| {case} | {statistics.median(o):.0f} | {statistics.median(n):.0f} | {statistics.median(d):+.0f} "
            f"| {sum(x < 0 for x in d)}/{len(d)} | {statistics.median(f):.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
