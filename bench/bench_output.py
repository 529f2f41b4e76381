"""Output throughput and memory: a step printing SIZE bytes, through `runbook exec` over SSH (both the
persistent shell and one exec channel per command) and locally, against `ssh host cmd > /dev/null`.

    python bench/bench_output.py [--size 1G] [--modes persistent,exec,local,ssh]

Targets (issue 14): 1 GB within 1.5x of OpenSSH's `ssh host cmd > /dev/null`, peak RSS <= 100 MB.
Peak RSS is the runbook process's own high-water mark (VmHWM from /proc, sampled until it exits);
the sshd is a real one on 127.0.0.x started for the run (tests/fixtures/sshd.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runbook.execute.transports.capture import parse_size  # noqa: E402
from tests.fixtures.procs import run_measured  # noqa: E402
from tests.fixtures.sshd import start_lab, write_inventory  # noqa: E402


def command(size: int) -> str:
    return f"head -c {size} /dev/zero | tr '\\\\0' x"


def bench_runbook(base: Path, lab, mode: str, size: int) -> tuple[float, int]:
    root = base / mode
    root.mkdir()
    host = lab.hosts[0]
    if mode == "local":
        inv = root / "inv"
        inv.write_text("localhost ansible_connection=local\n")
    else:
        inv = write_inventory(
            root / "inv.ini", [host], lab.key,
            host_vars={host.name: {"runbook_ssh_persistent_shell": str(mode == "persistent").lower()}},
        )  # fmt: skip
    rb = root / "out.yml"
    rb.write_text(f'hosts: all\nsteps:\n  - shell: "{command(size)}"\n    register: out\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUNBOOK_AUDIT": "0"}
    start = time.monotonic()
    code, out, err, rss = run_measured(
        [sys.executable, "-m", "runbook", "exec", str(rb), "-i", str(inv), "--output", "json",
         "--known-hosts", str(lab.known_hosts)],
        cwd=str(root), env=env, timeout=3600,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    if code != 0:
        raise SystemExit(f"{mode}: exit {code}\n{out[-2000:]}\n{err[-2000:]}")
    return elapsed, rss


def bench_openssh(lab, size: int) -> float:
    host = lab.hosts[0]
    argv = ["ssh", "-F", "/dev/null", "-i", str(lab.key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "BatchMode=yes", "-p", str(host.port), f"root@{host.address}", command(size)]  # fmt: skip
    start = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--modes", default="ssh,persistent,exec,local")
    args = ap.parse_args()
    size = parse_size(args.size)
    base = Path(tempfile.mkdtemp(prefix="bench-output-"))
    lab = start_lab(base / "lab")
    try:
        ref = None
        print(f"{size / 1e6:.0f} MB of output")
        for mode in args.modes.split(","):
            if mode == "ssh":
                ref = bench_openssh(lab, size)
                print(f"  ssh host cmd > /dev/null   {ref:7.2f} s   {size / ref / 1e6:7.0f} MB/s")
                continue
            elapsed, rss = bench_runbook(base, lab, mode, size)
            ratio = f"{elapsed / ref:5.2f}x ssh" if ref and mode != "local" else ""
            print(
                f"  runbook exec ({mode:10s}) {elapsed:7.2f} s   {size / elapsed / 1e6:7.0f} MB/s   "
                f"peak RSS {rss / 2**20:5.0f} MiB   {ratio}"
            )
    finally:
        for h in lab.all:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
