"""Ctrl-C twice: the first stops the running step and starts the rollback (with --yes); the second
aborts at once — the rollback's running command is killed, nothing more is undone, the state is
saved (so `runbook rollback` can finish the job), the audit is sealed, exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.core.conftest import PYTHON, REPO, Project
from tests.core.test_interrupt import assert_gone, wait_for

SLOW_UNDO = """
hosts: localhost
steps:
  - name: Rewrite config
    copy: {content: "new\\n", dest: "{{ t }}/app.conf"}
  - name: Start service
    shell: "touch {{ t }}/service"
    undo:
      shell: "echo $$ > {{ t }}/../undo.pid; touch {{ t }}/../undoing; sleep 60 & wait"
  - name: Long step
    shell: "touch {{ t }}/../started; sleep 60 & wait"
"""


def test_second_ctrl_c_aborts_the_rollback_at_once_with_state_saved_and_audit_sealed(
    project: Project, tmp_path: Path
) -> None:
    t = tmp_path / "target"
    t.mkdir()
    (t / "app.conf").write_text("old\n")
    project.runbook("slow", SLOW_UNDO)
    env = {**os.environ, "RUNBOOK_AUDIT": "1", "PYTHONPATH": str(REPO)}
    audit = tmp_path / "audit"
    proc = subprocess.Popen(
        [PYTHON, "-m", "runbook", "exec", "slow", "-i", "inv", "-e", f"t={t}", "--yes", "--output", "json",
         "--audit-dir", str(audit)],
        cwd=project.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for(tmp_path / "started", proc)
    os.kill(proc.pid, signal.SIGINT)  # first: stop the long step, roll back
    wait_for(tmp_path / "undoing", proc)
    os.kill(proc.pid, signal.SIGINT)  # second: abort now
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the second Ctrl-C did not end the run") from None
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    doc = json.loads(out)
    assert doc["status"] == "interrupted" and "aborted" in doc["message"], doc["message"]
    assert "runbook rollback slow --run" in doc["message"]
    assert_gone(int((tmp_path / "undo.pid").read_text()))  # the undo's command was killed
    (state,) = (project.root / ".runbook").rglob("state.json")
    entries = json.loads(state.read_text())["hosts"]["localhost"]["entries"]
    assert [e["status"] for e in entries if e["name"] == "Rewrite config"] != ["rolled_back"]
    assert (t / "app.conf").read_text() == "new\n"  # not undone: the operator aborted
    res = project.cli("audit", "verify", str(audit), "--allow-unsigned")
    assert res.exit_code == 0, res.output
