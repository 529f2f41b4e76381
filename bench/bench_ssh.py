#!/usr/bin/env python3
"""SSH execution speed: the same workload — 20 trivial shell steps (`echo step N`) on 10 hosts and on
1 host, over real OpenSSH sshd on loopback (started here, stopped at the end) — through:

  runbook (CLI, cold process: persistent remote shell, and exec-per-command via an inventory var),
  runbook's SSHTransport used directly (both modes), ansible-playbook (forks=10, pipelining on/off),
  pyinfra, and hand-written floors: paramiko loop, paramiko + TCP_NODELAY, asyncssh (persistent
  connections), OpenSSH ControlMaster.

Each is a fresh process per run (cold start), median of N runs, with peak RSS (sum over the process
tree, polled, and the largest single process from wait4). Two remote environments: the login user's
stock rc files (~/.bashrc runs `pyenv init` here: ~150 ms per command for per-command tools) and
neutralised ones (sshd in a private mount namespace with empty rc files bind-mounted over them).
Also `runbook --help` / `--version` cold start. DESIGN.md §9 has the targets.

    python3 bench/bench_ssh.py [--runs 5] [--slow-runs 1] [--stock-runs 1] [--quick|--full] [--json]
                               [--only runbook,paramiko,...] [--hosts 10]

Default (~5-6 min on 2 CPUs): 10 and 1 host(s) with neutralised rc files, 5 runs (ansible 1), then
10 hosts with stock rc files, 1 run.
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
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.sshd import SshdHost, generate_key, start_hosts, write_inventory  # noqa: E402

STEPS = 20
BIN = Path(sys.executable).parent

PARAMIKO = """
import json, socket, sys, threading, paramiko
cfg = json.loads(sys.argv[1]); errors = []
def work(addr, port):
    try:
        c = paramiko.SSHClient(); c.load_host_keys(cfg["kh"]); c.set_missing_host_key_policy(paramiko.RejectPolicy())
        sock = None
        if cfg["nodelay"]:
            sock = socket.create_connection((addr, port)); sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.connect(addr, port, "root", key_filename=cfg["key"], sock=sock, allow_agent=False, look_for_keys=False)
        for i in range(cfg["steps"]):
            _, out, err = c.exec_command(f"echo step {i}")
            assert out.read() == f"step {i}\\n".encode(); err.read(); assert out.channel.recv_exit_status() == 0
        c.close()
    except Exception as exc: errors.append(repr(exc))
ts = [threading.Thread(target=work, args=tuple(h)) for h in cfg["hosts"]]
[t.start() for t in ts]; [t.join() for t in ts]
sys.exit(f"errors: {errors}" if errors else 0)
"""

ASYNCSSH = """
import asyncio, json, sys, asyncssh
cfg = json.loads(sys.argv[1])
async def host(addr, port):
    async with asyncssh.connect(addr, port, username="root", client_keys=[cfg["key"]], known_hosts=cfg["kh"],
                                agent_path=None) as c:
        for i in range(cfg["steps"]):
            r = await c.run(f"echo step {i}", check=True); assert r.stdout == f"step {i}\\n"
async def main(): await asyncio.gather(*(host(a, p) for a, p in cfg["hosts"]))
asyncio.run(main())
"""

# --profile: the CLI under cProfile, one profiler per thread (the hosts run in threads; a profiler
# only sees the thread that enabled it), timed with time.thread_time (CPU, not wall), each stopped
# in its own thread; dumped as DIR/<run>/t<N>.prof when the CLI leaves (it ends with os._exit)
PROFILED_CLI = """
import cProfile, os, runpy, sys, threading, time
out = sys.argv.pop(1); os.makedirs(out, exist_ok=True); done = []; lock = threading.Lock()
def profiled(run):
    def wrapper(self):
        p = cProfile.Profile(time.thread_time); p.enable()
        try: run(self)
        finally:
            p.disable()
            with lock: done.append(p)
    return wrapper
threading.Thread.run = profiled(threading.Thread.run)
main = cProfile.Profile(time.thread_time)
def dump():
    main.disable()
    with lock: profs = [main, *done]  # threads still running (daemons: keepalive) are left out
    for i, p in enumerate(profs): p.dump_stats(os.path.join(out, f"t{i}.prof"))
leave = os._exit
def exit_profiled(code):
    dump(); leave(code)
os._exit = exit_profiled
sys.argv = ["runbook", *sys.argv[1:]]
main.enable()
try: runpy.run_module("runbook.cli.main", run_name="__main__")
finally: dump()
"""

RUNBOOK_API = """
import json, sys, threading
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.ssh import SSHTransport
from runbook.actions.commands import Command
cfg = json.loads(sys.argv[1]); errors = []
def work(addr, port):
    try:
        spec = HostSpec(name=addr, address=addr, port=port, user="root", private_key_file=cfg["key"])
        t = SSHTransport(spec, known_hosts=cfg["kh"], ssh_config="/dev/null", persistent_shell=cfg["persistent"])
        t.connect(); assert t.mode == ("persistent" if cfg["persistent"] else "exec")
        for i in range(cfg["steps"]):
            r = t.run(Command.shell(f"echo step {i}")); assert r.ok and r.stdout == f"step {i}\\n", r
        t.close()
    except Exception as exc: errors.append(repr(exc))
ts = [threading.Thread(target=work, args=tuple(h)) for h in cfg["hosts"]]
[t.start() for t in ts]; [t.join() for t in ts]
sys.exit(f"errors: {errors}" if errors else 0)
"""

CONTROLMASTER = """
set -e
opts="-F /dev/null -i $KEY -o UserKnownHostsFile=$KH -o StrictHostKeyChecking=yes -o BatchMode=yes -o ControlPath=$CP/%C"
one() {
  ssh $opts -o ControlMaster=yes -o ControlPersist=60 -fN -p "$2" "root@$1"
  i=0; while [ $i -lt $STEPS ]; do ssh $opts -p "$2" "root@$1" "echo step $i" >/dev/null; i=$((i+1)); done
  ssh $opts -O exit -p "$2" "root@$1" 2>/dev/null
}
pids=
for h in $HOSTS; do one "${h%:*}" "${h#*:}" & pids="$pids $!"; done
fail=0; for j in $pids; do wait "$j" || fail=1; done; exit $fail
"""


def tree_rss_kb(pid: int) -> int:
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat", "rb") as fh:
                    f = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            kids.setdefault(int(f[1]), []).append(int(e))
            rss[int(e)] = int(f[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += kids.get(p, [])
    return total


def measure(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> dict:
    """Wall time, client CPU (user+sys of the process tree), peak tree RSS (polled every 0.2 s), largest-process RSS (wait4) of one cold run."""
    with tempfile.TemporaryFile() as out_f:
        start = time.monotonic()
        try:
            p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out_f, stderr=out_f)
        except FileNotFoundError as exc:  # a tool that is not installed: reported as failed, not fatal
            return {
                "s": 0.0,
                "cpu_s": 0.0,
                "rc": 127,
                "tree_mb": 0.0,
                "proc_mb": 0.0,
                "tail": f"not installed: {exc}",
            }
        peak, stop = [0], threading.Event()

        def poll() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], tree_rss_kb(p.pid))

        threading.Thread(target=poll, daemon=True).start()
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)  # the rusage of this child (ru_maxrss: its largest process)
        wall = time.monotonic() - start
        timer.cancel()
        stop.set()
        p.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        tail = out_f.read()[-3000:].decode("utf-8", "replace")
    return {
        "s": wall,
        # user+sys of the child and every descendant it waited for (wait4's rusage): the client CPU
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "rc": p.returncode,
        "tree_mb": max(peak[0], ru.ru_maxrss) / 1024,
        "proc_mb": ru.ru_maxrss / 1024,
        "tail": tail,
    }


class Bench:
    def __init__(self, work: Path, key: Path, kh: Path, profile: Path | None = None):
        self.work, self.key, self.kh = work, key, kh
        self.profile = profile  # --profile: the CLI's runs are profiled into this directory
        self.profiled = 0
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}

    def files(self, hosts: list[SshdHost], tag: str) -> dict[str, Path]:
        d = self.work / tag
        if d.exists():
            return {p.stem: p for p in d.iterdir() if p.is_file()}
        d.mkdir(parents=True)
        py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        write_inventory(d / "inv.ini", hosts, self.key, group_vars={"ansible_python_interpreter": py})
        write_inventory(
            d / "inv_exec.ini", hosts, self.key, group_vars={"runbook_ssh_persistent_shell": "false"}
        )
        steps = "".join(f"  - name: step {i}\n    shell: echo step {i}\n" for i in range(STEPS))
        (d / "rb.yml").write_text(f"name: bench\nhosts: web\nsteps:\n{steps}")
        tasks = "".join(
            f"    - name: step {i}\n      ansible.builtin.shell: echo step {i}\n" for i in range(STEPS)
        )
        (d / "ansible.cfg").write_text("[defaults]\n")
        (d / "play.yml").write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
        inv = [
            (
                h.name,
                {
                    "ssh_hostname": h.address,
                    "ssh_port": h.port,
                    "ssh_user": "root",
                    "ssh_key": str(self.key),
                    "ssh_known_hosts_file": str(self.kh),
                    "ssh_strict_host_key_checking": "yes",
                },
            )
            for h in hosts
        ]
        (d / "pyinv.py").write_text(f"hosts = {inv!r}\n")
        ops = "".join(f"server.shell(name='step {i}', commands=['echo step {i}'])\n" for i in range(STEPS))
        (d / "deploy.py").write_text(f"from pyinfra.operations import server\n{ops}")
        return {p.stem: p for p in d.iterdir() if p.is_file()}

    def tools(self, hosts: list[SshdHost], tag: str) -> dict[str, Callable[[], dict]]:
        f, py = self.files(hosts, tag), sys.executable
        cfg = {
            "hosts": [[h.address, h.port] for h in hosts],
            "key": str(self.key),
            "kh": str(self.kh),
            "steps": STEPS,
        }

        def run(argv: list[str], env: dict | None = None) -> Callable[[], dict]:
            def go() -> dict:
                cwd = Path(tempfile.mkdtemp(dir=self.work))
                try:
                    return measure(argv, {**self.env, **(env or {})}, cwd)
                finally:
                    shutil.rmtree(cwd, ignore_errors=True)

            return go

        def rb_cli(inv: Path) -> Callable[[], dict]:
            tail = [
                "exec",
                str(f["rb"]),
                "-i",
                str(inv),
                "--yes",
                "--output",
                "json",
                "--known-hosts",
                str(self.kh),
                "--audit-dir",
                "audit",
            ]

            def go() -> dict:
                head = [py, "-m", "runbook.cli.main"]
                if self.profile is not None:
                    self.profiled += 1
                    head = [py, "-c", PROFILED_CLI, str(self.profile / f"{tag}-{inv.stem}-{self.profiled}")]
                return run([*head, *tail])()

            return go

        def ansible(pipelining: bool) -> Callable[[], dict]:
            def go() -> dict:
                cp = Path(tempfile.mkdtemp(dir=self.work, prefix="cp"))
                env = {
                    "ANSIBLE_HOST_KEY_CHECKING": "False",
                    "ANSIBLE_PIPELINING": str(pipelining),
                    "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp),
                    "ANSIBLE_LOCAL_TEMP": str(cp / "tmp"),
                    "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_RETRY_FILES_ENABLED": "False",
                    "ANSIBLE_CONFIG": str(f["ansible"]),
                }
                exe = (
                    str(BIN / "ansible-playbook")
                    if (BIN / "ansible-playbook").exists()
                    else "ansible-playbook"
                )
                return run([exe, "-i", str(f["inv"]), "-f", "10", str(f["play"])], env)()

            return go

        pyinfra = str(BIN / "pyinfra") if (BIN / "pyinfra").exists() else "pyinfra"
        cm_env = {
            "KEY": str(self.key),
            "KH": str(self.kh),
            "STEPS": str(STEPS),
            "HOSTS": " ".join(f"{h.address}:{h.port}" for h in hosts),
        }

        def controlmaster() -> dict:
            cp = Path(tempfile.mkdtemp(dir="/tmp", prefix="rbcm"))  # short: ControlPath length limit
            try:
                return run(["/bin/sh", "-c", CONTROLMASTER], {**cm_env, "CP": str(cp)})()
            finally:
                shutil.rmtree(cp, ignore_errors=True)

        return {
            "runbook (CLI)": rb_cli(f["inv"]),
            "runbook (CLI, exec per step)": rb_cli(f["inv_exec"]),
            "runbook SSHTransport": run([py, "-c", RUNBOOK_API, json.dumps({**cfg, "persistent": True})]),
            "runbook SSHTransport, exec": run(
                [py, "-c", RUNBOOK_API, json.dumps({**cfg, "persistent": False})]
            ),
            "paramiko loop": run([py, "-c", PARAMIKO, json.dumps({**cfg, "nodelay": False})]),
            "paramiko + TCP_NODELAY": run([py, "-c", PARAMIKO, json.dumps({**cfg, "nodelay": True})]),
            "asyncssh loop": run([py, "-c", ASYNCSSH, json.dumps(cfg)]),
            "OpenSSH ControlMaster": controlmaster,
            "pyinfra": run([pyinfra, str(f["pyinv"]), str(f["deploy"]), "-y"]),
            "ansible (pipelining)": ansible(True),
            "ansible (defaults)": ansible(False),
        }


SLOW = {"ansible (pipelining)", "ansible (defaults)"}
FLOORS = ["paramiko loop", "paramiko + TCP_NODELAY", "asyncssh loop", "OpenSSH ControlMaster"]
PER_COMMAND = {
    "pyinfra",
    "ansible (pipelining)",
    "ansible (defaults)",
    "runbook (CLI, exec per step)",
    "runbook SSHTransport, exec",
    *FLOORS,
}


def scenario(
    bench: Bench, hosts: list[SshdHost], tag: str, runs: int, slow_runs: int, skip: set[str]
) -> dict:
    tools = {k: v for k, v in bench.tools(hosts, tag).items() if k not in skip}
    results: dict[str, list[dict]] = {k: [] for k in tools}
    for i in range(max(runs, slow_runs)):
        for name, go in tools.items():  # interleaved, so drift hits every tool alike
            if i < (slow_runs if name in SLOW else runs):
                r = go()
                results[name].append(r)
                mark = "ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}"
                print(
                    f"  [{tag}] {name}: {r['s']:.2f}s cpu {r['cpu_s']:.2f}s {mark}",
                    file=sys.stderr,
                    flush=True,
                )
                if r["rc"] != 0:
                    print("    " + r["tail"].strip().replace("\n", "\n    ")[-1200:], file=sys.stderr)
    out = {}
    for name, rs in results.items():
        ok = [r for r in rs if r["rc"] == 0]
        out[name] = {
            "median_s": statistics.median(r["s"] for r in ok) if ok else None,
            "median_cpu_s": statistics.median(r["cpu_s"] for r in ok) if ok else None,
            "runs": len(ok),
            "failed_runs": len(rs) - len(ok),
            "peak_tree_rss_mb": max((r["tree_mb"] for r in ok), default=None),
            "largest_process_rss_mb": max((r["proc_mb"] for r in ok), default=None),
        }
    return out


def ratios(res: dict) -> dict:
    def m(k: str) -> float | None:
        return (res.get(k) or {}).get("median_s")

    def cpu(k: str) -> float | None:
        return (res.get(k) or {}).get("median_cpu_s")

    rb = m("runbook (CLI)")
    floors = [v for v in (m(k) for k in FLOORS) if v]
    out: dict[str, float | None] = {"best floor": min(floors) if floors else None}
    floor_cpu = cpu("paramiko + TCP_NODELAY")
    if cpu("runbook (CLI)") and floor_cpu:
        out["runbook CPU / paramiko+NODELAY CPU"] = cpu("runbook (CLI)") / floor_cpu
    if rb:
        out["runbook / best floor"] = rb / out["best floor"] if out["best floor"] else None
        for k in ("ansible (pipelining)", "ansible (defaults)", "pyinfra", *FLOORS):
            out[f"{k} / runbook"] = m(k) / rb if m(k) else None
    return out


def cold_start(runs: int) -> dict:
    out = {}
    for arg in ("--help", "--version"):
        times = []
        for _ in range(runs):
            t0 = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "runbook.cli.main", arg],
                cwd=ROOT,
                capture_output=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=True,
            )
            times.append(time.monotonic() - t0)
        out[f"runbook {arg}"] = statistics.median(times)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    out["python -c pass"] = time.monotonic() - t0
    return out


def markdown(report: dict) -> str:
    lines = []
    for key, res in report["scenarios"].items():
        rb = (res.get("runbook (CLI)") or {}).get("median_s")
        lines += [
            f"\n### {key}\n",
            "| tool | median s | client CPU s | runs | × runbook CLI | peak RSS tree MB | largest proc MB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in sorted(res.items(), key=lambda kv: kv[1]["median_s"] or 1e9):
            med = r["median_s"]
            cells = [
                f"{med:.2f}" if med else "failed",
                f"{r['median_cpu_s']:.2f}" if r["median_cpu_s"] is not None else "-",
                str(r["runs"]),
                f"{med / rb:.1f}" if med and rb else "-",
                f"{r['peak_tree_rss_mb']:.0f}" if r["peak_tree_rss_mb"] else "-",
                f"{r['largest_process_rss_mb']:.0f}" if r["largest_process_rss_mb"] else "-",
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        rt = report["ratios"][key]
        lines.append("\n" + ", ".join(f"{k}: {v:.2f}" for k, v in rt.items() if v) + "\n")
    lines += ["\n### cold start (median)\n", "| command | ms |", "|---|---:|"]
    lines += [f"| {k} | {v * 1000:.0f} |" for k, v in report["cold_start"].items()]
    return "\n".join(lines)


def profile_summary(directory: Path, top: int = 30) -> None:
    """The functions with the most CPU of their own, over every profiled run and thread (stderr)."""
    import pstats

    for run_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        files = sorted(str(f) for f in run_dir.glob("t*.prof"))
        if files:
            print(f"== profile {run_dir.name} ({len(files)} threads)", file=sys.stderr)
            pstats.Stats(*files, stream=sys.stderr).sort_stats("tottime").print_stats(top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per tool (neutralised rc files)")
    ap.add_argument("--slow-runs", type=int, default=1, help="runs for ansible-playbook (~30-45 s each)")
    ap.add_argument("--stock-runs", type=int, default=1, help="runs per tool with the stock rc files")
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="3 runs, ansible with pipelining only")
    ap.add_argument(
        "--full",
        action="store_true",
        help="also 1 host with stock rc files, and ansible defaults / runbook exec-per-step CLI there",
    )
    ap.add_argument("--only", default="", help="comma-separated tool names (substring match)")
    ap.add_argument("--json", action="store_true", help="print the JSON report instead of markdown")
    ap.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the runbook CLI under cProfile (per thread, CPU time): DIR/<scenario>-<inventory>-<n>/t*.prof,"
        " and print the top functions of the merged profiles (profiling inflates the CPU figures)",
    )
    a = ap.parse_args()
    # an installed package has its bytecode compiled (pip does it); an editable checkout only gets it
    # when Python may write it (not under PYTHONDONTWRITEBYTECODE): compile it, as for the peers
    compileall.compile_dir(ROOT / "runbook", quiet=1)
    if a.quick:
        a.runs = min(a.runs, 3)
    work = Path(tempfile.mkdtemp(prefix="runbook-bench-ssh-"))
    hosts: dict[str, list[SshdHost]] = {}
    try:
        key = generate_key(work / "client" / "id_ed25519")
        auth = work / "authorized_keys"
        auth.write_text((work / "client" / "id_ed25519.pub").read_text())
        hosts["stock"] = start_hosts(work / "stock", a.hosts, auth, prefix="web", first=2)
        hosts["neutralised"] = start_hosts(
            work / "neutral", a.hosts, auth, prefix="web", first=2 + a.hosts, neutralise_rc=True
        )
        kh = work / "known_hosts"
        kh.write_text("".join(h.known_hosts_line() for hs in hosts.values() for h in hs))
        bench = Bench(work, key, kh, a.profile.resolve() if a.profile else None)
        wanted = [w.strip().lower() for w in a.only.split(",") if w.strip()]
        all_tools = bench.tools(hosts["stock"][:1], "probe").keys()
        skip = {t for t in all_tools if wanted and not any(w in t.lower() for w in wanted)}
        if a.quick:
            skip.add("ansible (defaults)")
        # stock rc files make every per-command tool CPU-bound on the hosts' rc files (~15-45 s a run):
        # by default that scenario runs once, without the variants that only add the same cost again
        stock_skip = skip if a.full else skip | {"ansible (defaults)", "runbook (CLI, exec per step)"}
        plan = [
            ("neutralised", a.hosts, a.runs, skip),
            ("neutralised", 1, a.runs, skip),
            ("stock", a.hosts, a.stock_runs, stock_skip),
        ]
        if a.full:
            plan.append(("stock", 1, a.stock_runs, stock_skip))
        report: dict = {"steps": STEPS, "scenarios": {}, "ratios": {}, "machine": {"cpus": os.cpu_count()}}
        for rc_mode, n, runs, skipped in plan:
            if runs <= 0:
                continue
            key_ = f"{n} host(s) x {STEPS} steps, {rc_mode} rc files"
            print(f"== {key_}", file=sys.stderr)
            res = scenario(bench, hosts[rc_mode][:n], f"{rc_mode}-{n}", runs, min(a.slow_runs, runs), skipped)
            report["scenarios"][key_] = res
            report["ratios"][key_] = ratios(res)
        report["cold_start"] = cold_start(max(a.runs, 5))
        print(json.dumps(report, indent=2) if a.json else markdown(report))
        if a.profile is not None:
            profile_summary(a.profile)
        return 0
    finally:
        for hs in hosts.values():
            for h in hs:
                h.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
