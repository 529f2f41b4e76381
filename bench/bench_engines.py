#!/usr/bin/env python3
"""One runbook, three ways to run it, on the same hosts in the same run: runbook's own engine
(`runbook exec`), `runbook exec --engine ansible` (the compiled playbook through ansible-runner,
its events turned into runbook's), and the compiled playbook under plain `ansible-playbook`
(`runbook compile`, the collection on ANSIBLE_COLLECTIONS_PATH).

The runbook: 10 typical steps (file, copy, template, shell; snapshots and undo as usual) on H hosts
(default 10) over real OpenSSH sshd on loopback (tests/fixtures/sshd.py, started here, stopped at
the end), host keys checked. Each host's files are removed between runs, so every run makes the
same changes. Every run is a fresh process (cold start); the three are interleaved, median of N.

Reported per way: wall time and the client's CPU (user + sys of the process tree as it is reaped:
ansible-playbook's forks included; a detached SSH ControlPersist master is not), and ratios to the
native engine. The machine's load average is printed: timings on a loaded machine move.

    python3 bench/bench_engines.py [--runs 3] [--hosts 10] [--json]
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

from tests.fixtures.sshd import SshdHost, generate_key, start_hosts, write_inventory  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
BIN = Path(sys.executable).parent

RUNBOOK = """\
name: bench-engines
hosts: web
vars:
  out: /tmp/never
  version: "1.4.2"
steps:
  - name: App directory
    file: {{path: "{{{{ out }}}}/{{{{ inventory_hostname }}}}/app", state: directory, mode: "0755"}}
  - name: Config directory
    file: {{path: "{{{{ out }}}}/{{{{ inventory_hostname }}}}/etc", state: directory, mode: "0750"}}
  - name: Version file
    copy: {{content: "{{{{ version }}}}\\n", dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}/app/VERSION"}}
  - name: App config
    template: {{src: "{template}", dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}/etc/app.conf", mode: "0640"}}
  - name: Environment file
    copy: {{content: "APP_ENV=bench\\nAPP_PORT=8080\\n", dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}/etc/env", mode: "0600"}}
  - name: Unpack release
    shell: "mkdir -p {{{{ out | quote }}}}/{{{{ inventory_hostname }}}}/app/releases/1 && echo release > {{{{ out | quote }}}}/{{{{ inventory_hostname }}}}/app/releases/1/marker"
    undo:
      shell: "rm -rf -- {{{{ out | quote }}}}/{{{{ inventory_hostname }}}}/app/releases/1"
  - name: Current link
    file: {{src: "{{{{ out }}}}/{{{{ inventory_hostname }}}}/app/releases/1", path: "{{{{ out }}}}/{{{{ inventory_hostname }}}}/app/current", state: link}}
  - name: Log directory
    file: {{path: "{{{{ out }}}}/{{{{ inventory_hostname }}}}/log", state: directory, mode: "0755"}}
  - name: Health check
    shell: "test -f {{{{ out | quote }}}}/{{{{ inventory_hostname }}}}/app/current/marker && grep -q 8080 {{{{ out | quote }}}}/{{{{ inventory_hostname }}}}/etc/env"
    changed_when: false
  - name: Record the deploy
    shell: "date +%s > {{{{ out | quote }}}}/{{{{ inventory_hostname }}}}/log/deployed"
"""

TEMPLATE = "# {{ inventory_hostname }}\nversion = {{ version }}\nlisten = 0.0.0.0:8080\nworkers = 4\n"


def measure(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> dict:
    """Wall time and client CPU (user+sys of the reaped process tree) of one cold run."""
    with tempfile.TemporaryFile() as out_f:
        start = time.monotonic()
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out_f, stderr=out_f)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            raise
        wall = time.monotonic() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        tail = out_f.read()[-3000:].decode("utf-8", "replace")
    return {"s": wall, "cpu": ru.ru_utime + ru.ru_stime, "rc": p.returncode, "tail": tail}


class Bench:
    def __init__(self, work: Path, hosts: list[SshdHost], key: Path, kh: Path):
        self.work, self.hosts, self.key, self.kh = work, hosts, key, kh
        self.out = work / "out"
        tpl = work / "app.conf.j2"
        tpl.write_text(TEMPLATE)
        self.rb = work / "playbooks" / "bench-engines.yml"
        self.rb.parent.mkdir(parents=True)
        self.rb.write_text(RUNBOOK.format(template=tpl))
        ssh_args = f"-F /dev/null -o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes"
        self.inv = write_inventory(
            work / "inv.ini", hosts, key,
            group_vars={"ansible_python_interpreter": PY, "ansible_ssh_common_args": f"'{ssh_args}'"},
        )  # fmt: skip
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "RUNBOOK_AUDIT": "0"}
        self.runbook = [sys.executable, "-m", "runbook.cli.main"]
        self.playbook = work / "bench-engines.ansible.yml"
        subprocess.run(
            [*self.runbook, "compile", str(self.rb), "-o", str(self.playbook)],
            env=self.env, cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        coll = subprocess.run(
            [*self.runbook, "ansible-collection", "path"],
            env=self.env, cwd=work, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        self.collections = coll

    def fresh(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir()

    def check(self) -> str:
        """Empty when every host ended as the runbook says; else what is missing."""
        missing = [
            f"{h.name}: {rel}"
            for h in self.hosts
            for rel in ("app/VERSION", "etc/app.conf", "etc/env", "app/current/marker", "log/deployed")
            if not (self.out / h.name / rel).exists()
        ]
        return "; ".join(missing[:5])

    def native(self) -> dict:
        return self._run([*self.runbook, "exec", str(self.rb), "-i", str(self.inv), "-e", f"out={self.out}",
                          "--yes", "--output", "json", "--known-hosts", str(self.kh), "-f", "10"])  # fmt: skip

    def via_ansible(self) -> dict:
        return self._run([*self.runbook, "exec", str(self.rb), "-i", str(self.inv), "-e", f"out={self.out}",
                          "--yes", "--output", "json", "--known-hosts", str(self.kh), "-f", "10",
                          "--engine", "ansible"])  # fmt: skip

    def plain(self) -> dict:
        cp = Path(tempfile.mkdtemp(dir="/tmp", prefix="rbcp"))  # short: ControlPath length limit
        env = {
            "ANSIBLE_COLLECTIONS_PATH": self.collections,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp),
            "ANSIBLE_LOCAL_TEMP": str(cp / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PIPELINING": "True",  # as --engine ansible runs it
            "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=30s",
        }
        exe = str(BIN / "ansible-playbook") if (BIN / "ansible-playbook").exists() else "ansible-playbook"
        try:
            return self._run(
                [exe, "-i", str(self.inv), "-f", "10", "-e", f"out={self.out}", str(self.playbook)], env
            )
        finally:
            for sock in cp.glob("*"):  # the masters this run left (ControlPersist): stopped
                if sock.is_socket():
                    subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                                   capture_output=True, timeout=10)  # fmt: skip
            shutil.rmtree(cp, ignore_errors=True)

    def _run(self, argv: list[str], env: dict[str, str] | None = None) -> dict:
        self.fresh()
        cwd = Path(tempfile.mkdtemp(dir=self.work))
        try:
            r = measure(argv, {**self.env, **(env or {})}, cwd)
        finally:
            shutil.rmtree(cwd, ignore_errors=True)
        problem = self.check() if r["rc"] == 0 else ""
        if problem:
            r["rc"], r["tail"] = -1, f"end state wrong: {problem}\n{r['tail']}"
        return r


WAYS = {
    "runbook exec (native engine)": "native",
    "runbook exec --engine ansible": "via_ansible",
    "ansible-playbook (compiled playbook)": "plain",
}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="runbook-bench-engines-"))
    hosts: list[SshdHost] = []
    try:
        key = generate_key(work / "client" / "id_ed25519")
        auth = work / "authorized_keys"
        auth.write_text((work / "client" / "id_ed25519.pub").read_text())
        hosts = start_hosts(work / "sshd", a.hosts, auth, prefix="web", first=2, neutralise_rc=True)
        kh = work / "known_hosts"
        kh.write_text("".join(h.known_hosts_line() for h in hosts))
        bench = Bench(work, hosts, key, kh)
        results: dict[str, list[dict]] = {k: [] for k in WAYS}
        loads = [loadavg()]
        for i in range(a.runs):
            for name, attr in WAYS.items():  # interleaved: drift of the load hits every way alike
                r = getattr(bench, attr)()
                results[name].append(r)
                mark = "ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}"
                print(f"  run {i + 1} {name}: {r['s']:.2f}s wall, {r['cpu']:.2f}s cpu {mark}",
                      file=sys.stderr, flush=True)  # fmt: skip
                if r["rc"] != 0:
                    print("    " + r["tail"].strip().replace("\n", "\n    ")[-1500:], file=sys.stderr)
            loads.append(loadavg())
        report: dict = {"hosts": a.hosts, "steps": 10, "runs": a.runs, "loadavg": loads,
                        "cpus": os.cpu_count(), "ways": {}}  # fmt: skip
        for name, rs in results.items():
            ok = [r for r in rs if r["rc"] == 0]
            report["ways"][name] = {
                "median_wall_s": statistics.median(r["s"] for r in ok) if ok else None,
                "median_cpu_s": statistics.median(r["cpu"] for r in ok) if ok else None,
                "runs": len(ok),
                "failed_runs": len(rs) - len(ok),
                "walls": [round(r["s"], 2) for r in rs],
            }
        print(json.dumps(report, indent=2) if a.json else markdown(report))
        return 0 if all(w["failed_runs"] == 0 for w in report["ways"].values()) else 1
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(work, ignore_errors=True)


def markdown(report: dict) -> str:
    base = report["ways"]["runbook exec (native engine)"]
    lines = [
        f"{report['hosts']} hosts x {report['steps']} steps, median of {report['runs']} runs "
        f"({report['cpus']} CPUs, load average before/after each round: {', '.join(report['loadavg'])})\n",
        "| way | median wall s | median client CPU s | wall x native | CPU x native | runs (failed) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, w in report["ways"].items():
        wall, cpu = w["median_wall_s"], w["median_cpu_s"]
        rw = f"{wall / base['median_wall_s']:.1f}" if wall and base["median_wall_s"] else "-"
        rc = f"{cpu / base['median_cpu_s']:.1f}" if cpu and base["median_cpu_s"] else "-"
        lines.append(
            f"| {name} | {wall:.2f} | {cpu:.2f} | {rw} | {rc} | {w['runs']} ({w['failed_runs']}) |"
            if wall
            else f"| {name} | failed | - | - | - | 0 ({w['failed_runs']}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
