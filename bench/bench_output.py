"""Output throughput and memory: a step printing SIZE bytes, through `runbook exec` over SSH (both the
persistent shell and one exec channel per command) and locally, against `ssh host cmd > /dev/null`
(and, for the local mode, `sh -c cmd > /dev/null`).

    python bench/bench_output.py [--size 1G] [--modes ssh,persistent,exec,sh,local] [--runs 3]

Targets (issue 14): 1 GB within 1.5x of OpenSSH's `ssh host cmd > /dev/null`, peak RSS <= 100 MB.
Every run is a fresh process; medians of --runs runs (interleaved, so drift hits every mode alike)
of wall time and client CPU (user+sys of the process and the children it waited for, wait4). Peak
RSS is the runbook process's own high-water mark (VmHWM from /proc, sampled until it exits). The
sshd is a real one on 127.0.0.x started for the run (tests/fixtures/sshd.py). Audit is off
(RUNBOOK_AUDIT=0): this measures the output path, not the trail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runbook.execute.transports.capture import parse_size  # noqa: E402
from tests.fixtures.procs import peak_rss  # noqa: E402
from tests.fixtures.sshd import start_lab, write_inventory  # noqa: E402


def command(size: int) -> str:
    return f"head -c {size} /dev/zero | tr '\\\\0' x"


def measure(argv: list[str], *, cwd: str, env: dict[str, str], timeout: float = 3600) -> dict:
    """One run: wall s, client CPU s (wait4 user+sys), peak RSS bytes (VmHWM, polled)."""
    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        peak, stop = [0], threading.Event()

        def poll() -> None:
            while not stop.wait(0.05):
                peak[0] = max(peak[0], peak_rss(proc.pid))

        threading.Thread(target=poll, daemon=True).start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        timer.cancel()
        stop.set()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise SystemExit(f"{argv[:4]}: exit {code}\n{err.read()[-2000:].decode(errors='replace')}")
    return {"s": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss": peak[0]}


def runbook_argv(base: Path, lab, mode: str, size: int) -> tuple[list[str], Path]:
    root = base / mode
    root.mkdir(exist_ok=True)
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
    argv = [sys.executable, "-m", "runbook", "exec", str(rb), "-i", str(inv), "--output", "json",
            "--known-hosts", str(lab.known_hosts)]  # fmt: skip
    return argv, root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--modes", default="ssh,persistent,exec,sh,local")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    size = parse_size(args.size)
    base = Path(tempfile.mkdtemp(prefix="bench-output-"))
    lab = start_lab(base / "lab")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUNBOOK_AUDIT": "0"}
    host = lab.hosts[0]
    try:
        argvs: dict[str, tuple[list[str], str]] = {}
        for mode in args.modes.split(","):
            if mode == "ssh":
                argvs[mode] = (
                    ["ssh", "-F", "/dev/null", "-i", str(lab.key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                     "-o", "BatchMode=yes", "-p", str(host.port), f"root@{host.address}", command(size)],
                    str(base),
                )  # fmt: skip
            elif mode == "sh":
                argvs[mode] = (["/bin/sh", "-c", command(size)], str(base))
            else:
                argv, root = runbook_argv(base, lab, mode, size)
                argvs[mode] = (argv, str(root))
        results: dict[str, list[dict]] = {m: [] for m in argvs}
        for _ in range(args.runs):
            for mode, (argv, cwd) in argvs.items():
                results[mode].append(measure(argv, cwd=cwd, env=env))
        med = {
            m: {k: statistics.median(r[k] for r in rs) for k in ("s", "cpu")}
            | {"rss": max(r["rss"] for r in rs)}
            for m, rs in results.items()
        }
        load = os.getloadavg()
        print(
            f"{size / 1e6:.0f} MB of output; median of {args.runs} runs; load average {load[0]:.1f} {load[1]:.1f}"
        )
        print(
            f"  {'mode':26s} {'wall s':>7s} {'CPU s':>7s} {'MB/s':>7s} {'peak RSS':>9s}  vs reference (wall)"
        )
        for mode, r in med.items():
            ref = med.get("sh" if mode in ("local", "sh") else "ssh")
            label = {"ssh": "ssh host cmd > /dev/null", "sh": "sh -c cmd > /dev/null"}.get(
                mode, f"runbook exec ({mode})"
            )
            ratio = f"{r['s'] / ref['s']:5.2f}x" if ref and ref is not r else ""
            runs = " ".join(f"{x['s']:.2f}" for x in results[mode])
            print(
                f"  {label:26s} {r['s']:7.2f} {r['cpu']:7.2f} {size / r['s'] / 1e6:7.0f} "
                f"{r['rss'] / 2**20:6.0f} MiB  {ratio}   (runs: {runs})"
            )
    finally:
        for h in lab.all:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
