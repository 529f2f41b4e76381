#!/usr/bin/env python3
"""SSH over a WAN: the bench_ssh workload (20 trivial steps, `echo step N`, on 10 hosts and on 1
host, sshd with neutralised rc files) with every connection going through a delaying proxy
(bench/wanproxy.py: ``--rtt`` ms round trip, half each way, TCP handshake modelled) — runbook CLI
(cold process, audit on, --output json) against the floors (paramiko + TCP_NODELAY, asyncssh).

The proxy counts round trips ("turns") per connection. Runs with 1 and with 20 steps give the
per-step turns (their difference / 19) and the start-up + close turns (connect, auth, shell, close: the rest).

Physical limit: the client interpreter (`python -c "import paramiko"`, measured) + the round trips of
a minimal client of OpenSSH's sshd up to the first step's output (TCP, banner, KEXINIT+ECDH,
NEWKEYS+service+auth request, channel open, exec (sshd opens the session window only then), hello
with the first step = 7) + 1 round trip per further step.

    python3 bench/bench_wan.py [--rtt 50] [--runs 5] [--only runbook,paramiko,asyncssh] [--json]
                               [--turns-log FILE]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ssh import ASYNCSSH, PARAMIKO, measure  # noqa: E402
from bench.wanproxy import WanProxy  # noqa: E402
from tests.fixtures.sshd import SshdHost, generate_key, start_hosts  # noqa: E402

STARTUP_MIN_RTT = 7  # TCP, banner, kex, NEWKEYS+service+auth, channel open, exec, hello + first step


def write_files(d: Path, proxied: list[tuple[str, int]], key: Path, steps: int, tag: str) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    lines = ["[web]"]
    for i, (addr, port) in enumerate(proxied, 1):
        lines.append(
            f"web{i} ansible_host={addr} ansible_port={port} ansible_user=root ansible_ssh_private_key_file={key}"
        )
    (d / f"inv-{tag}.ini").write_text("\n".join(lines) + "\n")
    body = "".join(f"  - name: step {i}\n    shell: echo step {i}\n" for i in range(steps))
    (d / f"rb-{tag}.yml").write_text(f"name: bench\nhosts: web\nsteps:\n{body}")
    return {"inv": d / f"inv-{tag}.ini", "rb": d / f"rb-{tag}.yml"}


def summarise_turns(records: list[dict]) -> dict:
    turns = sorted(r["turns"] for r in records)
    return {"connections": len(records), "turns_median": statistics.median(turns) if turns else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtt", type=float, default=50.0, help="round-trip time, ms")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--only", default="", help="comma-separated tool names (substring match)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--turns-log", type=Path, help="append every connection's turn log (JSON lines)")
    ap.add_argument(
        "--runbook-root",
        type=Path,
        default=ROOT,
        help="the checkout whose runbook CLI runs (e.g. to compare)",
    )
    a = ap.parse_args()
    compileall.compile_dir(a.runbook_root / "runbook", quiet=1)
    work = Path(tempfile.mkdtemp(prefix="runbook-bench-wan-"))
    hosts: list[SshdHost] = []
    proxy = WanProxy(a.rtt, a.turns_log)
    try:
        key = generate_key(work / "client" / "id_ed25519")
        auth = work / "authorized_keys"
        auth.write_text((work / "client" / "id_ed25519.pub").read_text())
        hosts = start_hosts(work / "hosts", a.hosts, auth, prefix="web", first=2, neutralise_rc=True)
        # the proxies listen on 127.0.1.x; known_hosts names them ([127.0.1.x]:port), with the real keys
        proxied = [proxy.add((f"127.0.1.{i + 2}", 0), (h.address, h.port)) for i, h in enumerate(hosts)]
        proxy.start()
        kh = work / "known_hosts"
        kh.write_text(
            "".join(h.known_hosts_line(name=f"[{a_}]:{p}") for h, (a_, p) in zip(hosts, proxied, strict=True))
        )
        extra = os.environ.get("PYTHONPATH")  # e.g. where asyncssh is, when not installed
        root = str(a.runbook_root.resolve())
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + extra if extra else ""), "NO_COLOR": "1"}
        py = sys.executable
        wanted = [w.strip().lower() for w in a.only.split(",") if w.strip()]

        def tools(n: int, steps: int) -> dict[str, Callable[[], dict]]:
            f = write_files(work / "files", proxied[:n], key, steps, f"{n}-{steps}")
            cfg = {"hosts": [list(x) for x in proxied[:n]], "key": str(key), "kh": str(kh), "steps": steps}

            def run(argv: list[str]) -> Callable[[], dict]:
                def go() -> dict:
                    cwd = Path(tempfile.mkdtemp(dir=work))
                    proxy.clear()
                    try:
                        r = measure(argv, env, cwd)
                    finally:
                        shutil.rmtree(cwd, ignore_errors=True)
                    time.sleep(0.1)  # the proxy logs a connection once both sides closed
                    r["conns"] = proxy.connections()
                    return r

                return go

            out = {
                "runbook (CLI)": run(
                    [
                        py,
                        "-m",
                        "runbook.cli.main",
                        "exec",
                        str(f["rb"]),
                        "-i",
                        str(f["inv"]),
                        "--yes",
                        "--output",
                        "json",
                        "--known-hosts",
                        str(kh),
                        "--audit-dir",
                        "audit",
                    ]
                ),
                "paramiko + TCP_NODELAY": run([py, "-c", PARAMIKO, json.dumps({**cfg, "nodelay": True})]),
                "asyncssh loop": run([py, "-c", ASYNCSSH, json.dumps(cfg)]),
            }
            return {k: v for k, v in out.items() if not wanted or any(w in k.lower() for w in wanted)}

        report: dict = {"rtt_ms": a.rtt, "steps": a.steps, "scenarios": {}, "load": os.getloadavg()}
        for n, steps in ((a.hosts, a.steps), (1, a.steps), (1, 1)):
            key_ = f"{n} host(s) x {steps} step(s)"
            print(f"== {key_}", file=sys.stderr)
            ts = tools(n, steps)
            results: dict[str, list[dict]] = {k: [] for k in ts}
            runs = a.runs if steps > 1 else max(1, a.runs // 2)
            for _ in range(runs):
                for name, go in ts.items():
                    r = go()
                    results[name].append(r)
                    turns = [c["turns"] for c in r["conns"]]
                    mark = "ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}"
                    print(
                        f"  {name}: {r['s']:.3f}s cpu {r.get('cpu_s', 0):.2f}s turns/conn {turns} {mark}",
                        file=sys.stderr,
                        flush=True,
                    )
                    if r["rc"] != 0:
                        print("    " + r["tail"][-1500:], file=sys.stderr)
            res = {}
            for name, rs in results.items():
                ok = [r for r in rs if r["rc"] == 0]
                res[name] = {
                    "median_s": statistics.median(r["s"] for r in ok) if ok else None,
                    "cpu_s": statistics.median(r.get("cpu_s", 0) for r in ok) if ok else None,
                    "runs": len(ok),
                    "turns_per_conn": statistics.median(c["turns"] for r in ok for c in r["conns"])
                    if ok
                    else None,
                }
            report["scenarios"][key_] = res
        # physical limit: interpreter + paramiko import + (7 + steps + close) round trips
        t0 = time.monotonic()
        subprocess.run([py, "-c", "import paramiko"], check=True)
        imp = time.monotonic() - t0
        rtt = a.rtt / 1000
        report["physical_limit_s"] = {
            f"{a.steps} steps": imp + (STARTUP_MIN_RTT + a.steps - 1) * rtt,
            "1 step": imp + STARTUP_MIN_RTT * rtt,
            "python + import paramiko": imp,
        }
        sc = report["scenarios"]
        per_step: dict[str, float] = {}
        for name in sc.get(f"1 host(s) x {a.steps} step(s)", {}):
            t20 = sc[f"1 host(s) x {a.steps} step(s)"][name]["turns_per_conn"]
            t1 = sc["1 host(s) x 1 step(s)"].get(name, {}).get("turns_per_conn")
            if t20 is not None and t1 is not None:
                per = (t20 - t1) / (a.steps - 1)
                per_step[name] = {
                    "turns_per_step": round(per, 3),
                    "startup_and_close_turns": round(t1 - per, 2),
                }
        report["turns"] = per_step
        if a.json:
            print(json.dumps(report, indent=2))
        else:
            lim = report["physical_limit_s"][f"{a.steps} steps"]
            print(f"\nRTT {a.rtt:g} ms; physical limit {a.steps} steps: {lim:.2f}s (load {report['load']})")
            for key_, res in sc.items():
                limit = report["physical_limit_s"]["1 step" if key_.endswith(" 1 step(s)") else f"{a.steps} steps"]
                print(
                    f"\n### {key_} (physical limit {limit:.2f}s)\n\n"
                    "| tool | median s | × limit | client CPU s | turns/conn | runs |\n|---|---:|---:|---:|---:|---:|"
                )
                for name, r in res.items():
                    if r["median_s"] is not None:
                        print(
                            f"| {name} | {r['median_s']:.2f} | {r['median_s'] / limit:.2f} | {r['cpu_s']:.2f} "
                            f"| {r['turns_per_conn']} | {r['runs']} |"
                        )
            print("\n| tool | start-up + close turns | turns per step |\n|---|---:|---:|")
            for name, t in per_step.items():
                print(f"| {name} | {t['startup_and_close_turns']} | {t['turns_per_step']} |")
        return 0
    finally:
        proxy.stop()
        for h in hosts:
            h.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
