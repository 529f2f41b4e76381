"""runbook.core.audit writes runbook's signed, hash-chained audit trail from a real ansible-playbook
run; `runbook audit verify` accepts it and finds a tampered record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.audit.keys import generate_key
from runbook.cli.main import cli

pytestmark = pytest.mark.slow

PLAYBOOK = """\
- name: deploy
  hosts: localhost
  gather_facts: false
  tasks:
    - name: write marker
      runbook.core.step:
        kind: copy
        args: {{content: "v2\\n", dest: "{dest}"}}
    - name: say hello
      ansible.builtin.command: echo hello
      changed_when: false
    - name: skipped one
      ansible.builtin.command: "true"
      when: false
    - name: secret thing
      ansible.builtin.command: echo s3cr3t-value
      no_log: true
    - name: fails
      ansible.builtin.command: /bin/false
"""


def _records(directory: Path) -> list[dict]:
    (path,) = directory.glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def verify(directory: Path, signers: Path):
    return CliRunner().invoke(
        cli, ["audit", "verify", str(directory), "--allowed-signers", str(signers), "--json"]
    )


def test_playbook_events_become_a_signed_chain_that_verifies(tmp_path: Path, ansible) -> None:
    key = tmp_path / "audit_ed25519"
    generate_key(key, "ops@ansible")
    audit = tmp_path / "audit"
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK.format(dest=tmp_path / "marker"))
    run = ansible(
        ANSIBLE_CALLBACKS_ENABLED="runbook.core.audit",
        RUNBOOK_AUDIT_DIR=str(audit),
        RUNBOOK_AUDIT_KEY=str(key),
        RUNBOOK_RUN_ID="ans-run-1",
    )
    res = run.playbook(pb, "localhost,", "-c", "local", check=False)
    assert res.returncode == 2, res.stdout + res.stderr  # the failing task: Ansible's exit code 2

    recs = _records(audit)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert recs[0]["event"] == "run.start" and recs[0]["run_id"] == "ans-run-1"
    assert recs[0]["data"]["engine"] == "ansible" and recs[0]["key_id"]
    ends = {r["step"]: r for r in recs if r["event"] == "step.end"}
    assert ends["write marker"]["outcome"] == "changed" and ends["write marker"]["data"]["module"] == "copy"
    assert ends["say hello"]["outcome"] == "ok" and "stdout_sha256" in ends["say hello"]
    assert ends["skipped one"]["outcome"] == "skipped"
    assert ends["fails"]["outcome"] == "failed" and ends["fails"]["rc"] == 1
    assert "s3cr3t-value" not in (audit.glob("*.jsonl").__next__()).read_text()  # no_log stays out
    host_end = next(r for r in recs if r["event"] == "host.end")
    assert host_end["host"] == "localhost" and host_end["data"]["stats"]["failures"] == 1
    run_end = next(r for r in recs if r["event"] == "run.end")
    assert run_end["outcome"] == "failed" and run_end["data"]["exit_code"] == 2
    assert recs[-1]["event"] == "seal" and recs[-1]["final"] is True and recs[-1]["sig"]

    signers = Path(f"{key}.pub")
    ok = verify(audit, signers)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True

    # a second playbook run (a new id, as by default) chains onto the first
    run.env["RUNBOOK_RUN_ID"] = "ans-run-2"
    run.playbook(pb, "localhost,", "-c", "local", check=False)
    ok = verify(audit, signers)
    assert ok.exit_code == 0, ok.output
    assert len(json.loads(ok.output)["runs"]) == 2

    # tamper with one record of the first run: verify names it
    first = sorted(audit.glob("*.jsonl"))[0]
    lines = first.read_text().splitlines()
    rec = json.loads(lines[3])
    rec["outcome"] = "ok" if rec.get("outcome") != "ok" else "changed"
    lines[3] = json.dumps(rec, separators=(",", ":"), sort_keys=True)
    first.write_text("\n".join(lines) + "\n")
    bad = verify(audit, signers)
    assert bad.exit_code == 1, bad.output
    doc = json.loads(bad.output)
    problems = doc["problems"] + [p for r in doc["runs"] for p in r["problems"]]
    assert any("record 4 altered" in p for p in problems), problems
