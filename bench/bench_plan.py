#!/usr/bin/env python3
"""Static planning speed: `runbook validate NAME -i <N-host inventory>` (load the runbook, read the
inventory, select hosts, check module arguments and templates, render every step for every host with
StrictUndefined), cold process start, median of several runs. Target (DESIGN §9): deploy-4gb against
1,000 hosts in <= 1 s. Also reports the same check through the Python API in one warm process
(`runbook.validate`, the session layer the CLI uses: the check without the process start) and the
CLI's cold start (`--help`, `--version`; target <= 150 ms).

The editor / pre-commit cases (issue 14, target <= 150 ms each, cold process, as a user runs them):
`runbook validate deploy-4gb -i inventories/local` from the repository root, and `runbook plan` of a
generated 20-step local runbook (file, template, copy, shell, command steps of a deploy, in a scratch
directory) against a localhost inventory. Each is reported as the median wall time and the median
CPU time (user+sys of the process and its children: the stable figure on a loaded machine), next to
`python -c pass` (the interpreter's own start on this machine). The bytecode is compiled first, as
an installed package has it.

    python3 bench/bench_plan.py [--runbook deploy-4gb] [--hosts 1000] [--runs 7] [--only cold]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
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


LOCAL_STEPS = 20


def write_local_project(directory: Path, steps: int = LOCAL_STEPS) -> tuple[Path, Path]:
    """A project with a ``steps``-step runbook of a local deploy (directories, templates, copied
    files, shell and command steps, a registered result used later) under ``directory``, and its
    localhost inventory. Everything it would touch is below ``directory``/app."""
    (directory / "playbooks").mkdir(parents=True, exist_ok=True)
    (directory / "templates").mkdir(exist_ok=True)
    for n in range(3):
        (directory / "templates" / f"conf{n}.j2").write_text(
            f"# {{{{ app_name }}}} {n} for {{{{ inventory_hostname }}}}\n"
            "listen = {{ app_bind }}:{{ app_port + %d }}\n"
            % n
            + "{% for w in workers %}worker {{ w }} = {{ app_dir }}/run/{{ w }}.sock\n{% endfor %}"
            + "version = {{ app_version | default('v1') }}\n"
        )
    inv = directory / "hosts"
    inv.write_text("[app]\nlocalhost ansible_connection=local\n")
    kinds = [
        lambda i: {
            "name": f"Directory {i}",
            "file": {"path": f"{{{{ app_dir }}}}/d{i}", "state": "directory", "mode": "0755"},
        },
        lambda i: {
            "name": f"Config {i}",
            "template": {
                "src": f"conf{i % 3}.j2",
                "dest": f"{{{{ app_dir }}}}/d{i - 1}/app{i}.conf",
                "mode": "0640",
            },
        },
        lambda i: {
            "name": f"Release file {i}",
            "copy": {
                "content": "{{ app_version }} {{ inventory_hostname }}\n",
                "dest": f"{{{{ app_dir }}}}/d{i - 2}/VERSION{i}",
            },
        },
        lambda i: {
            "name": f"Shell {i}",
            "shell": f"test -d {{{{ app_dir | quote }}}} && echo {{{{ app_name | quote }}}}-{i}",
            "changed_when": False,
        },
        lambda i: {
            "name": f"Command {i}",
            "command": f"ls -- {{{{ app_dir | quote }}}}/d{i - 4}",
            "changed_when": False,
            "register": f"listing{i}",
        },
    ]
    body = [kinds[i % len(kinds)](i) for i in range(steps)]
    last_reg = next((b["register"] for b in reversed(body[:-1]) if "register" in b), None)
    if last_reg and steps > 1:
        body[-1] = {"name": "Report", "debug": {"msg": f"{{{{ {last_reg}.rc }}}} {{{{ app_name }}}}"}}
    import json

    doc = {
        "name": "bench-local",
        "description": "A generated local deploy (bench/bench_plan.py).",
        "hosts": "app",
        "vars": {
            "app_dir": str(directory / "app"),
            "app_name": "bench",
            "app_bind": "127.0.0.1",
            "app_port": 18000,
            "app_version": "v2",
            "workers": ["a", "b", "c"],
        },
        "steps": body,
    }
    rb = directory / "playbooks" / "bench-local.yml"
    rb.write_text(json.dumps(doc, indent=1) + "\n")  # JSON is YAML
    return rb, inv


def cold(
    cmd: list[str], runs: int, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """Median wall time, median CPU time (user+sys of the process and its children) and the last
    exit code of ``runs`` cold runs of ``cmd``."""
    walls, cpus, rc = [], [], 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        rc = proc.returncode
        if rc != 0:
            sys.stderr.write(proc.stdout[-600:] + proc.stderr[-600:])
    return statistics.median(walls), statistics.median(cpus), rc


def runbook_command() -> list[str]:
    """How a user starts runbook: the console script installed beside this interpreter (not a
    version manager's shim), else ``python -m runbook``; PYTHONPATH points it at this checkout."""
    script = Path(sys.executable).parent / "runbook"
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "runbook"]


def cold_cases(runs: int) -> list[tuple[str, float, float, int]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    base = runbook_command()
    out = [
        (
            "python -c pass (the interpreter's start, reference)",
            *cold([sys.executable, "-c", "pass"], runs, env=env),
        )
    ]
    out.append(
        (
            "runbook validate deploy-4gb -i inventories/local",
            *cold([*base, "validate", "deploy-4gb", "-i", "inventories/local"], runs, env=env),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        rb, inv = write_local_project(Path(tmp))
        out.append(
            (
                f"runbook plan <{LOCAL_STEPS}-step local runbook> -i <localhost>",
                *cold([*base, "plan", str(rb), "-i", str(inv)], runs, cwd=Path(tmp), env=env),
            )
        )
        out.append(
            (
                f"runbook validate <{LOCAL_STEPS}-step local runbook> -i <localhost>",
                *cold([*base, "validate", str(rb), "-i", str(inv)], runs, cwd=Path(tmp), env=env),
            )
        )
    return out


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
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument(
        "--only", choices=["cold", "hosts"], help="only the cold-start cases, or only the N-host ones"
    )
    a = ap.parse_args()
    # an installed package has its bytecode compiled (pip does it): compile the checkout's
    compileall.compile_dir(ROOT / "runbook", quiet=1)
    if a.only != "hosts":
        print(f"cold process, median of {a.runs} runs, load average {os.getloadavg()[0]:.2f}")
        print("| command | wall | CPU (user+sys) | target |")
        print("|---|---|---|---|")
        for label, wall, cpu, rc in cold_cases(a.runs):
            failed = f" (FAILED rc={rc})" if rc else ""
            target = "-" if label.startswith("python") else "<= 150 ms"
            print(f"| {label} | {wall * 1000:.0f} ms{failed} | {cpu * 1000:.0f} ms | {target} |")
        print()
    if a.only == "cold":
        return
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
