"""Full and read-only disks under .runbook/ (run state, snapshots) and the audit directory, on real
filesystems (a 512 KB tmpfs, a read-only bind mount): a snapshot is durable before its change or
the change does not happen; the run ends with its JSON document, never exit 70; what changed is
rolled back; a run refused before any change exits 3, a run stopped half-way exits 5."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.core.conftest import Project
from tests.fixtures.disks import fill, read_only, small_tmpfs

BIG = 1_500_000  # the previous file: its snapshot cannot fit on a 512 KB disk


@pytest.fixture
def t(project: Project, tmp_path: Path) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    (d / "small.conf").write_text("v1\n")
    (d / "big.conf").write_bytes(os.urandom(BIG // 2).hex().encode()[:BIG])
    project.template("big.conf.j2", "rendered {{ inventory_hostname }}\n")
    return d


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def exec_json(project: Project, *args: str) -> tuple[int, dict[str, Any]]:
    res = project.exec("disk", "--output", "json", *args)
    assert res.exit_code != 70 and "internal error" not in res.output, res.output
    return res.exit_code, json.loads(res.stdout)


def states(project: Project) -> list[dict[str, Any]]:
    """Every saved state under .runbook/, parsed: none may be cut short."""
    runs = project.root / ".runbook" / "runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*/state.json"))]


BIG_CHANGE = """
hosts: localhost
steps:
  - name: small
    copy: {{content: "v2\\n", dest: "{{{{ t }}}}/small.conf"}}
  - name: big
    {big}
  - name: after
    copy: {{content: "never\\n", dest: "{{{{ t }}}}/after.conf"}}
always:
  - name: notify
    shell: "echo {{{{ run.status }}}} > {{{{ t }}}}/always"  # no snapshot: runs on any disk
"""

BIG_STEPS = {
    "copy": 'copy: {content: "tiny\\n", dest: "{{ t }}/big.conf"}',
    "template": 'template: {src: big.conf.j2, dest: "{{ t }}/big.conf"}',
}


@pytest.mark.parametrize("module", sorted(BIG_STEPS))
def test_a_snapshot_too_big_for_the_disk_stops_the_change(
    project: Project, t: Path, module: str
) -> None:
    project.runbook("disk", BIG_CHANGE.format(big=BIG_STEPS[module]))
    before = digest(t / "big.conf")
    with small_tmpfs(project.root / ".runbook", "512k"):
        code, doc = exec_json(project, "-e", f"t={t}")
        assert code == 5, doc["message"]
        big = project.steps(doc)["big"]
        assert big["outcome"] == "failed"
        assert "snapshot not saved, nothing changed" in big["msg"] and "No space left on device" in big["msg"]
        assert digest(t / "big.conf") == before  # not applied without its snapshot
        assert (t / "small.conf").read_text() == "v1\n"  # the earlier change was rolled back
        assert not (t / "after.conf").exists()
        assert (t / "always").read_text().strip() == "aborted"
        (saved,) = states(project)  # whole: the short write never replaced the good state
        assert not list((project.root / ".runbook" / "runs").glob("*/state.tmp"))
        entry = next(e for e in saved["hosts"]["localhost"]["entries"] if e["name"] == "small")
        assert entry["snapshots"]  # the small one made it to disk before its change


def test_a_state_directory_with_no_room_refuses_the_run(project: Project, t: Path) -> None:
    project.runbook("disk", BIG_CHANGE.format(big=BIG_STEPS["copy"]))
    with small_tmpfs(project.root / ".runbook", "64k") as d:
        fill(d)
        code, doc = exec_json(project, "-e", f"t={t}")
    assert code == 3  # refused before any change
    assert doc["status"] == "refused" and "nothing was changed" in doc["message"]
    assert "No space left on device" in doc["message"]
    assert (t / "small.conf").read_text() == "v1\n"
    assert "small" not in project.steps(doc)


def test_a_read_only_state_directory_refuses_the_run(project: Project, t: Path) -> None:
    project.runbook("disk", BIG_CHANGE.format(big=BIG_STEPS["copy"]))
    (project.root / ".runbook").mkdir()
    with read_only(project.root / ".runbook"):
        code, doc = exec_json(project, "-e", f"t={t}")
    assert code == 3
    assert "Read-only file system" in doc["message"] and "nothing was changed" in doc["message"]
    assert (t / "small.conf").read_text() == "v1\n"
    assert (t / "always").read_text().strip() == "refused"  # always: ran, and says so


def test_the_state_directory_filling_up_mid_run_stops_and_rolls_back(project: Project, t: Path) -> None:
    project.runbook(
        "disk",
        """
        hosts: localhost
        steps:
          - name: small
            copy: {content: "v2\\n", dest: "{{ t }}/small.conf"}
          - name: the disk fills up
            shell: "cat /dev/zero > {{ state_dir }}/filler 2>/dev/null; true"
            undo: none
          - name: big
            copy: {content: "tiny\\n", dest: "{{ t }}/big.conf"}
        always:
          - name: notify
            shell: "echo {{ run.status }} > {{ t }}/always"
        """,
    )
    before = digest(t / "big.conf")
    with small_tmpfs(project.root / ".runbook", "512k") as d:
        code, doc = exec_json(project, "-e", f"t={t}", "-e", f"state_dir={d}")
        states(project)  # still whole
    assert code == 5, doc["message"]
    assert "cannot write the run state" in doc["message"]
    assert project.steps(doc)["big"]["outcome"] == "failed"
    assert digest(t / "big.conf") == before
    assert (t / "small.conf").read_text() == "v1\n"
    assert doc["hosts"]["localhost"]["rollback"] == "ok"


AUDITED = """
hosts: localhost
steps:
  - name: small
    copy: {content: "v2\\n", dest: "{{ t }}/small.conf"}
  - name: the audit disk fills up
    shell: "cat /dev/zero > {{ audit }}/filler 2>/dev/null; true"
    undo: none
  - name: after
    copy: {content: "never\\n", dest: "{{ t }}/after.conf"}
always:
  - name: notify
    shell: "echo {{ run.status }} > {{ t }}/always"
"""


@pytest.fixture
def audited(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    monkeypatch.setenv("RUNBOOK_AUDIT_KEY", "")
    project.runbook("disk", AUDITED)


def test_the_audit_disk_filling_up_mid_run_stops_and_rolls_back(
    project: Project, t: Path, audited: None
) -> None:
    with small_tmpfs(project.root / "audit", "256k") as audit:
        code, doc = exec_json(project, "-e", f"t={t}", "-e", f"audit={audit}", "--audit-dir", str(audit))
        lines = next(audit.glob("*.jsonl")).read_text().splitlines()
    assert code == 5, doc["message"]
    assert "audit trail cannot be written" in doc["message"]
    assert "No space left on device" in doc["message"]
    after = project.steps(doc)["after"]
    assert after["outcome"] == "failed" and after["msg"].startswith("not run: audit trail cannot be written")
    assert not (t / "after.conf").exists()
    assert (t / "small.conf").read_text() == "v1\n"  # rolled back
    assert (t / "always").read_text().strip() == "aborted"
    for line in lines:  # what was written is whole records, no torn line
        json.loads(line)


@pytest.mark.parametrize("room", [0, 4096], ids=["not-even-the-lock", "the-lock-only"])
def test_a_full_audit_disk_refuses_the_run_and_leaves_the_chain_whole(
    project: Project, t: Path, audited: None, room: int
) -> None:
    project.runbook("disk", 'hosts: localhost\nsteps:\n  - copy: {content: "v2\\n", dest: "{{ t }}/small.conf"}\n')
    with small_tmpfs(project.root / "audit", "64k") as audit:
        code, doc = exec_json(project, "-e", f"t={t}", "--audit-dir", str(audit))
        assert code == 0, doc  # a first run, sealed
        (t / "small.conf").write_text("v1\n")
        fill(audit, leave=room)
        code, doc = exec_json(project, "-e", f"t={t}", "--audit-dir", str(audit))
        assert code == 3
        assert doc["status"] in ("refused", "error") and "nothing was changed" in doc["message"]
        assert "No space left on device" in doc["message"]
        assert (t / "small.conf").read_text() == "v1\n"
        (audit / "filler").unlink()  # space again: the next run chains onto the last sealed one
        code, doc = exec_json(project, "-e", f"t={t}", "--audit-dir", str(audit))
        assert code == 0, doc
        res = project.cli("audit", "verify", str(audit), "--allow-unsigned")
    assert res.exit_code == 0, res.output
    assert "2 run(s)" in res.output


def test_a_read_only_audit_directory_refuses_the_run(project: Project, t: Path, audited: None) -> None:
    audit = project.root / "audit"
    audit.mkdir()
    with read_only(audit):
        code, doc = exec_json(project, "-e", f"t={t}", "-e", f"audit={audit}", "--audit-dir", str(audit))
    assert code == 3
    assert doc["status"] == "error" and "Read-only file system" in doc["message"]
    assert "nothing was changed" in doc["message"]
    assert (t / "small.conf").read_text() == "v1\n"


def test_a_damaged_state_file_is_a_clear_error_for_rollback_and_resume(project: Project, t: Path) -> None:
    project.runbook("disk", BIG_CHANGE.format(big=BIG_STEPS["copy"]))
    code, doc = exec_json(project, "-e", f"t={t}")
    assert code == 0, doc
    state = project.root / ".runbook" / "runs" / doc["run_id"] / "state.json"
    state.write_bytes(state.read_bytes()[:100])  # cut short, as a full disk did before
    for args in (("rollback", "disk", "--run", doc["run_id"], "--yes"), ("exec", "disk", "--resume", doc["run_id"])):
        res = project.cli(*args, "--output", "json")
        assert res.exit_code == 2, res.output
        assert "internal error" not in res.output
        assert "cannot be read" in res.output and "damaged" in res.output


REMOUNT = """
hosts: localhost
steps:
  - name: small
    copy: {content: "v2\\n", dest: "{{ t }}/small.conf"}
  - name: the disk turns read-only
    shell: "mount -o remount,ro {{ disk }}"
    undo: none
  - name: after
    copy: {content: "never\\n", dest: "{{ t }}/after.conf"}
always:
  - name: notify
    shell: "echo {{ run.status }} > {{ t }}/always"
"""


def test_the_state_disk_turning_read_only_mid_run_stops_and_rolls_back(
    project: Project, t: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (an audit disk cannot be remounted read-only under the run's open file: its full disk is above)
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    monkeypatch.setenv("RUNBOOK_AUDIT_KEY", "")
    project.runbook("disk", REMOUNT)
    with small_tmpfs(project.root / ".runbook", "1m") as disk:
        code, doc = exec_json(project, "-e", f"t={t}", "-e", f"disk={disk}", "--audit-dir", str(project.root / "audit"))
    assert code == 5, doc["message"]
    assert "Read-only file system" in doc["message"]
    after = project.steps(doc)["after"]
    assert after["outcome"] == "failed"
    assert after["msg"].startswith(("not run: ", "snapshot not saved, nothing changed"))
    assert not (t / "after.conf").exists()
    assert (t / "small.conf").read_text() == "v1\n"
    assert (t / "always").read_text().strip() == "aborted"
