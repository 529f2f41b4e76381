"""Two loads on the safety net, on the session's real services:

- more failed deploy-4gb attempts in a row on one host than compose.up keeps releases (each a
  release that comes up and then fails its health check, each rolled back automatically), then a
  good deploy and `runbook rollback` of it: every one must leave the host exactly at the baseline (the
  release store included: the release to go back to must still be there after ``ATTEMPTS`` newer
  ones, each of which pushes it further out of the newest 5 kept);
- a step that prints 200 MB, locally and over SSH, followed by a failing step: the run must end
  rolled back with its recap and a JSON document, without holding the output in memory (peak RSS of
  the runbook process, measured by the kernel), and with the console, JSON and audit bounded.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import MATRIX, REPO, Outcome, differences, wait_until
from tests.faults.subjects import Deploy4gb

BIG = 200 * 1024 * 1024
ATTEMPTS = 5 + 2  # compose.up's keep_releases (5), and two more: the baseline's falls out of the window
RSS_LIMIT_MB = 256  # the CLI itself takes ~80 MB; 200 MB held in memory would not fit


@pytest.fixture(scope="module")
def target(dockerd, postgres_server, redis_server, tmp_path_factory) -> Iterator[Deploy4gb]:
    root = tmp_path_factory.mktemp("faultrepeat")
    t = Deploy4gb(
        root, postgres_server, redis_server, "matrix-repeat", "matrix-repeat ansible_connection=local"
    )
    yield t
    t.down()


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.postgres
def test_more_failed_attempts_in_a_row_than_releases_kept_then_a_rollback(target: Deploy4gb) -> None:
    baseline = target.ensure_baseline()
    s = target.subject
    problems = []
    for n in range(1, ATTEMPTS + 1):
        res = s.deploy(app_image="runbook-demo:unhealthy")
        found = s.state()
        diff = differences(baseline, found)
        ok = res.rc == 1 and res.doc is not None and res.doc["status"] == "rolled_back" and not diff
        up = wait_until(lambda: s.healthy(baseline), limit=60)
        MATRIX.append(Outcome("deploy-4gb", "local", f"failed attempt {n}/{ATTEMPTS}", "repeat", "automatic", ok,
                              res.rc, None if up is None else round(res.seconds + up, 2),
                              "" if ok else f"exit {res.rc}: {res.message[:200]}; " + "; ".join(diff)).row())  # fmt: skip
        if not ok:
            problems.append(f"attempt {n}: exit {res.rc}: {res.message}; " + "; ".join(diff))
    good = s.deploy()
    back = s.cli("rollback", "--run", good.run_id) if good.rc == 0 else good
    diff = differences(baseline, s.state())
    ok = good.rc == 0 and back.rc == 0 and not diff
    MATRIX.append(Outcome("deploy-4gb", "local", f"good deploy after {ATTEMPTS} failures, rolled back", "repeat",
                          "rollback", ok, back.rc, None, "" if ok else f"exit {back.rc}: {back.message[:300]}").row())  # fmt: skip
    if not ok:
        problems.append(
            f"the good deploy (exit {good.rc}) then rollback: exit {back.rc}: {back.message}; {diff}"
        )
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------- 200 MB of output

BIG_RUNBOOK = textwrap.dedent(
    f"""\
    name: big-output
    hosts: all
    steps:
      - name: Write the config
        copy: {{content: "new\\n", dest: "{{{{ conf }}}}", mode: "0644"}}
      - name: Print 200 MB
        shell: "head -c {BIG} /dev/zero | tr '\\\\0' x | fold -w 1023"
        changed_when: false  # it only prints: nothing for a rollback to undo
      - name: Then fail
        shell: "exit 3"
    rollback: auto
    """
)

# runs the CLI as its only child, its output to files, and prints its exit code and the kernel's peak
# RSS of the children it waited for (the CLI, and the small commands of the step)
MEASURE = (
    "import resource, subprocess, sys\n"
    "with open(sys.argv[1] + '.out', 'wb') as o, open(sys.argv[1] + '.err', 'wb') as e:\n"
    "    r = subprocess.run(sys.argv[2:], stdout=o, stderr=e)\n"
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


class _Stream:
    """What the step prints (``head -c BIG /dev/zero | tr '\\0' x | fold -w 1023``): size, sha256."""

    def __len__(self) -> int:
        return BIG + BIG // 1023

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        line = b"x" * 1023 + b"\n"
        for _ in range(BIG // 1023):
            h.update(line)
        h.update(b"x" * (BIG % 1023))
        return h.hexdigest()


STREAM = _Stream()


def big_output(root: Path, inventory: str, host: str, extra: list[str]) -> dict[str, Any]:
    (root / "playbooks").mkdir(parents=True, exist_ok=True)
    (root / "playbooks" / "big-output.yml").write_text(BIG_RUNBOOK)
    conf = root / "app.conf"
    conf.write_text("old\n")
    (root / "hosts.ini").write_text(f"[all]\n{inventory}\n")
    argv = [sys.executable, "-m", "runbook.cli.main", "exec", "big-output", "-i", str(root / "hosts.ini"),
            "-e", json.dumps({"conf": str(conf)}), "--yes", "--output", "json", "--audit-dir", str(root / "audit"),
            *extra]  # fmt: skip
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "RUNBOOK_PATH": str(root / "playbooks"), "PYTHONPATH": str(REPO),
           "HOME": str(Path.home())}  # fmt: skip
    probe = root / "cli"
    res = subprocess.run([sys.executable, "-c", MEASURE, str(probe), *argv], cwd=root, env=env,
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    rc, rss_kb = (int(x) for x in res.stdout.split())
    out = probe.with_suffix(".out").read_bytes()
    audit = sum(p.stat().st_size for p in (root / "audit").glob("*.jsonl"))
    records = [json.loads(line) for p in (root / "audit").glob("*.jsonl") for line in p.read_text().splitlines()]
    return {"rc": rc, "rss_mb": rss_kb // 1024, "stdout_bytes": len(out), "stdout": out, "audit_bytes": audit,
            "conf": conf.read_text(), "records": records, "err": probe.with_suffix(".err").read_text()[-2000:]}  # fmt: skip


def check_big(r: dict[str, Any], via: str) -> None:
    problems = []
    try:
        doc = json.loads(r["stdout"])
    except ValueError:
        doc = None
        problems.append(f"no JSON document on stdout (exit {r['rc']}): {r['err']}")
    if r["rc"] != 1 or (doc and doc.get("status") != "rolled_back"):
        problems.append(f"exit {r['rc']} ({doc and doc.get('message')}), expected 1 and rolled back")
    if r["conf"] != "old\n":
        problems.append(f"app.conf not restored: {r['conf'][:40]!r}")
    if r["rss_mb"] > RSS_LIMIT_MB:
        problems.append(f"peak RSS {r['rss_mb']} MB for 200 MB of output (limit {RSS_LIMIT_MB} MB)")
    if r["stdout_bytes"] > 8 * 1024 * 1024:
        problems.append(f"the JSON document is {r['stdout_bytes'] // 1024} KiB (the output is not capped)")
    if r["audit_bytes"] > 8 * 1024 * 1024:
        problems.append(f"the audit trail is {r['audit_bytes'] // 1024} KiB")
    printed = [s for h in (doc or {}).get("hosts", {}).values() for s in h["steps"] if s["name"] == "Print 200 MB"]
    if not printed or "bytes elided" not in printed[0]["stdout"]:
        problems.append("the registered output has no visible marker of what was cut")
    ends = [r for r in r["records"] if r["event"] == "step.end" and r.get("step") == "Print 200 MB"]
    kept = [e["stdout"] for x in ends for e in x.get("data", {}).get("elided", []) if "stdout" in e]
    if kept != [{"bytes": len(STREAM), "kept": kept[0]["kept"] if kept else 0, "sha256": STREAM.sha256}]:
        problems.append(f"the audit does not keep the whole output's size and digest: {kept}")
    MATRIX.append(Outcome("big-output", via, "a 200 MB-output step, then a failure", "load", "automatic",
                          not problems, r["rc"], None,
                          "; ".join(problems)[:600] or f"peak RSS {r['rss_mb']} MB, JSON {r['stdout_bytes'] // 1024} KiB").row())  # fmt: skip
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_a_200_mb_output_step_locally(tmp_path: Path) -> None:
    check_big(big_output(tmp_path, "local1 ansible_connection=local", "local1", []), "local")


@pytest.mark.slow
@pytest.mark.ssh
def test_a_200_mb_output_step_over_ssh(ssh_lab, tmp_path: Path) -> None:
    h = ssh_lab.hosts[0]
    line = (f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user=root "
            f"ansible_ssh_private_key_file={ssh_lab.key}")  # fmt: skip
    check_big(big_output(tmp_path, line, h.name, ["--known-hosts", str(ssh_lab.known_hosts)]), "ssh")
