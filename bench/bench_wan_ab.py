#!/usr/bin/env python3
"""Two checkouts of runbook through the same WAN link, run by run in turn (A, B, A, B ...): on a
machine whose load moves by the minute, a comparison made in the same seconds. The workload and
the link are bench_wan's (``echo`` steps, sshd with neutralised rc files behind bench/wanproxy.py);
the CLI runs cold, audit on, --output json. Prints each checkout's median and best wall time and
median client CPU (user + sys of the process tree), and the median of the run-by-run differences.

    python3 bench/bench_wan_ab.py A_ROOT B_ROOT [--hosts 10] [--steps 20] [--runs 5] [--rtt 50]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ssh import measure  # noqa: E402
from bench.bench_wan import write_files  # noqa: E402
from bench.wanproxy import WanProxy  # noqa: E402
from tests.fixtures.sshd import SshdHost, generate_key, start_hosts  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", type=Path, nargs=2, help="the two checkouts (A, B)")
    ap.add_argument("--rtt", type=float, default=50.0)
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    for r in a.roots:
        compileall.compile_dir(r / "runbook", quiet=1)
    work = Path(tempfile.mkdtemp(prefix="runbook-bench-wan-ab-"))
    hosts: list[SshdHost] = []
    proxy = WanProxy(a.rtt)
    try:
        key = generate_key(work / "client" / "id_ed25519")
        auth = work / "authorized_keys"
        auth.write_text((work / "client" / "id_ed25519.pub").read_text())
        hosts = start_hosts(work / "hosts", a.hosts, auth, prefix="web", first=2, neutralise_rc=True)
        proxied = [proxy.add((f"127.0.1.{i + 2}", 0), (h.address, h.port)) for i, h in enumerate(hosts)]
        proxy.start()
        kh = work / "known_hosts"
        kh.write_text("".join(h.known_hosts_line(name=f"[{x}]:{p}") for h, (x, p) in zip(hosts, proxied, strict=True)))
        f = write_files(work / "files", proxied, key, a.steps, "ab")
        results: dict[Path, list[dict]] = {r: [] for r in a.roots}
        for _ in range(a.runs):
            for root in a.roots:
                env = {**os.environ, "PYTHONPATH": str(root.resolve()), "NO_COLOR": "1"}
                argv = [sys.executable, "-m", "runbook.cli.main", "exec", str(f["rb"]), "-i", str(f["inv"]), "--yes",
                        "--output", "json", "--known-hosts", str(kh), "--audit-dir", "audit"]  # fmt: skip
                cwd = Path(tempfile.mkdtemp(dir=work))
                try:
                    r = measure(argv, env, cwd)
                finally:
                    shutil.rmtree(cwd, ignore_errors=True)
                if r["rc"] != 0:
                    print(f"{root}: FAILED rc={r['rc']}\n{r['tail'][-1500:]}", file=sys.stderr)
                    return 1
                results[root].append(r)
                print(f"  {root}: {r['s']:.3f}s cpu {r['cpu_s']:.2f}s", file=sys.stderr, flush=True)
        print(f"\nRTT {a.rtt:g} ms, {a.hosts} host(s) x {a.steps} step(s), {a.runs} runs each, in turn "
              f"(load {os.getloadavg()[0]:.1f})\n\n| checkout | median s | best s | client CPU s |\n|---|---:|---:|---:|")  # fmt: skip
        for root, rs in results.items():
            walls = [r["s"] for r in rs]
            cpu = statistics.median(r["cpu_s"] for r in rs)
            print(f"| {root} | {statistics.median(walls):.2f} | {min(walls):.2f} | {cpu:.2f} |")
        # run by run: each A run and the B run right after it saw (nearly) the same load
        diffs = [ra["s"] - rb["s"] for ra, rb in zip(*results.values(), strict=True)]
        print(f"\nA - B, run by run: median {statistics.median(diffs):+.3f}s; B faster in "
              f"{sum(d > 0 for d in diffs)} of {len(diffs)}")  # fmt: skip
        return 0
    finally:
        proxy.stop()
        for h in hosts:
            h.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
