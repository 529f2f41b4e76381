#!/usr/bin/env python3
"""The Ansible-module path: the same tasks — K `ansible.builtin.lineinfile` steps, each host its own
file — on H hosts over real OpenSSH sshd on loopback (started here, stopped at the end), through:

  runbook-ansible   runbook exec, the steps as Ansible modules (one ansible-playbook per step and batch)
  ansible-playbook  the same tasks as one play (forks = H), same inventory and known_hosts
                    (Ansible's defaults, and with pipelining, which runbook turns on for its runs)
  runbook-native    runbook exec with runbook's own kind for the same change (`copy` of the file's
                    content: the fast path runbook's own modules keep), for scale

Each run is a fresh CLI process (cold start), files removed between runs; median of N runs. Reported
per step (time of K steps minus the 1-step time, over K-1) and per host (10 hosts vs 1 host).

    python3 bench/bench_ansible_module.py [--runs 3] [--hosts 10] [--steps 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.sshd import generate_key, start_hosts, write_inventory, write_known_hosts  # noqa: E402

PY = "/usr/bin/python3"  # the hosts' interpreter (discovery may find a pyenv shim here)


def runbook_file(path: Path, out: Path, steps: int, native: bool) -> Path:
    body = ["name: bench\nhosts: web\nsteps:"]
    for i in range(steps):
        dest = f"{out}/{{{{ inventory_hostname }}}}-{i}.conf"
        if native:
            body.append(f'  - copy: {{content: "line {i}\\n", dest: "{dest}"}}')
        else:
            body.append(f'  - ansible.builtin.lineinfile: {{path: "{dest}", line: "line {i}", create: true}}\n    undo: none')
    path.write_text("\n".join(body) + "\n")
    return path


def playbook_file(path: Path, out: Path, steps: int) -> Path:
    tasks = "".join(
        f'    - ansible.builtin.lineinfile: {{path: "{out}/{{{{ inventory_hostname }}}}-{i}.conf", line: "line {i}", create: true}}\n'
        for i in range(steps)
    )
    path.write_text(f"- hosts: web\n  gather_facts: false\n  tasks:\n{tasks}")
    return path


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    opt = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ansible-module-"))
    key = generate_key(work / "client" / "id_ed25519")
    auth = work / "authorized_keys"
    auth.write_text(Path(f"{key}.pub").read_text())
    hosts = start_hosts(work, opt.hosts, auth)
    results: dict[str, dict[str, float]] = {}
    try:
        kh = write_known_hosts(work / "known_hosts", hosts)
        out = work / "out"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RUNBOOK_AUDIT": "0", "NO_COLOR": "1",
               "ANSIBLE_SSH_COMMON_ARGS": f"-o UserKnownHostsFile={kh}", "ANSIBLE_HOST_KEY_CHECKING": "True"}  # fmt: skip
        for n_hosts in (1, opt.hosts):
            inv = write_inventory(work / f"inv{n_hosts}.ini", hosts[:n_hosts], key, group_vars={"ansible_python_interpreter": PY})
            for n_steps in (1, opt.steps):
                cases = {
                    "runbook-ansible": [sys.executable, "-m", "runbook.cli.main", "exec",
                                        str(runbook_file(work / f"rb-{n_steps}.yml", out, n_steps, False)),
                                        "-i", str(inv), "--known-hosts", str(kh), "--yes"],
                    "ansible-playbook": [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(inv),
                                         "-f", str(n_hosts), str(playbook_file(work / f"pb-{n_steps}.yml", out, n_steps))],
                    "ansible-playbook+pipelining": [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(inv),
                                         "-f", str(n_hosts), str(work / f"pb-{n_steps}.yml")],
                    "runbook-native": [sys.executable, "-m", "runbook.cli.main", "exec",
                                       str(runbook_file(work / f"native-{n_steps}.yml", out, n_steps, True)),
                                       "-i", str(inv), "--known-hosts", str(kh), "--yes"],
                }  # fmt: skip
                for name, cmd in cases.items():
                    times = []
                    for _ in range(opt.runs):
                        shutil.rmtree(out, ignore_errors=True)
                        out.mkdir()
                        case_env = {**env, "ANSIBLE_PIPELINING": "True"} if "pipelining" in name else env
                        times.append(timed(cmd, case_env, work))
                    results.setdefault(name, {})[f"{n_hosts}h x {n_steps}s"] = statistics.median(times)
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(work, ignore_errors=True)
    H, K = opt.hosts, opt.steps
    summary = {}
    for name, r in results.items():
        summary[name] = {
            **{k: round(v, 2) for k, v in r.items()},
            "per step (1 host)": round((r[f"1h x {K}s"] - r["1h x 1s"]) / (K - 1), 3),
            f"per step ({H} hosts)": round((r[f"{H}h x {K}s"] - r[f"{H}h x 1s"]) / (K - 1), 3),
            "per extra host (1 step)": round((r[f"{H}h x 1s"] - r["1h x 1s"]) / (H - 1), 3),
        }
    if opt.json:
        print(json.dumps(summary, indent=2))
        return
    cols = list(next(iter(summary.values())).keys())
    print(f"{'':28}" + "".join(f"{c:>24}" for c in cols))
    for name, row in summary.items():
        print(f"{name:28}" + "".join(f"{row[c]:>24}" for c in cols))


if __name__ == "__main__":
    main()
