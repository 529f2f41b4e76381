#!/usr/bin/env python3
"""Two trees' `runbook exec` client CPU over SSH, paired: bench_ssh.py's 20-step runbook against the
same neutralised sshds (1 host, then 10), the old and the new tree alternately, and the floor
(paramiko + TCP_NODELAY) in every round; user+sys of each process tree from wait4. Needs what
bench_ssh.py needs (root, sshd). docs/performance.md, "Client CPU per host-step", fourth round.

    python3 bench/pair_ssh.py OLD_TREE [--rounds 10]
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

NEW = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(NEW / "bench"))

import bench_ssh as B  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    old = a.old.resolve()
    for tree in (old, NEW):
        compileall.compile_dir(str(tree / "runbook"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="pair-ssh-"))
    hosts: list[B.SshdHost] = []
    try:
        key = B.generate_key(work / "client" / "id_ed25519")
        auth = work / "authorized_keys"
        auth.write_text((work / "client" / "id_ed25519.pub").read_text())
        hosts = B.start_hosts(work / "neutral", 10, auth, prefix="web", first=40, neutralise_rc=True)
        kh = work / "known_hosts"
        kh.write_text("".join(h.known_hosts_line() for h in hosts))
        bench = B.Bench(work, key, kh)
        for n in (1, 10):
            tag = f"n{n}"
            floor = bench.tools(hosts[:n], tag)["paramiko + TCP_NODELAY"]
            f = bench.files(hosts[:n], tag)
            argv = [sys.executable, "-m", "runbook.cli.main", "exec", str(f["rb"]), "-i", str(f["inv"]),
                    "--yes", "--output", "json", "--known-hosts", str(kh), "--audit-dir", "audit"]  # fmt: skip

            def cli(tree: Path, argv: list[str] = argv) -> float:
                cwd = Path(tempfile.mkdtemp(dir=work))
                try:
                    r = B.measure(argv, {**os.environ, "PYTHONPATH": str(tree), "NO_COLOR": "1"}, cwd)
                finally:
                    shutil.rmtree(cwd, ignore_errors=True)
                if r["rc"] != 0:
                    raise SystemExit(f"runbook exec failed in {tree}:\n{r['tail']}")
                return float(r["cpu_s"])

            cli(NEW), cli(old)  # warm: page cache, code cache
            o: list[float] = []
            nw: list[float] = []
            fl: list[float] = []
            for i in range(a.rounds):
                for tree in (old, NEW) if i % 2 == 0 else (NEW, old):
                    (o if tree == old else nw).append(cli(tree))
                r = floor()
                if r["rc"] != 0:
                    raise SystemExit(f"the floor failed:\n{r['tail']}")
                fl.append(r["cpu_s"])
                print(f"  {tag} round {i}: old {o[-1]:.3f} new {nw[-1]:.3f} floor {fl[-1]:.3f}", file=sys.stderr)
            d = [b - x for x, b in zip(o, nw, strict=True)]
            mo, mn, mf = statistics.median(o), statistics.median(nw), statistics.median(fl)
            print(
                f"{n} host(s) x {B.STEPS} steps, {a.rounds} rounds, load {os.getloadavg()[0]:.1f}: CPU s old {mo:.3f} "
                f"new {mn:.3f} floor {mf:.3f}; CLI/floor {mo / mf:.2f}x -> {mn / mf:.2f}x; paired "
                f"{statistics.median(d):+.3f} s, new lower in {sum(x < 0 for x in d)}/{len(d)}",
                flush=True,
            )
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
