"""RUNBOOK_FAULT, the matrix's hook (runbook/execute/faultpoints.py), on a small runbook run locally: a
trace lists every point in the order the run passes them; a kill at one of them is a SIGKILL there,
with the state written before it on disk; a run without the variable is not touched."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.faults.harness import KILLED, Subject, kill_points, saved_state, trace

RUNBOOK = textwrap.dedent(
    """\
    name: hooked
    hosts: all
    steps:
      - name: Write {{ what }}
        copy: {content: "{{ what }}\\n", dest: "{{ dir }}/app.conf"}
      - name: Check it
        shell: "grep -q {{ what | quote }} {{ dir | quote }}/app.conf"
        changed_when: false
    rollback: auto
    """
)


@pytest.fixture
def hooked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Subject:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "hooked.yml").write_text(RUNBOOK)
    (tmp_path / "hosts.ini").write_text("h1 ansible_connection=local\n")
    (tmp_path / "app.conf").write_text("old\n")
    monkeypatch.setattr("tests.faults.harness.PLAYBOOKS", tmp_path / "playbooks")
    return Subject(
        runbook="hooked", root=tmp_path, inventory=tmp_path / "hosts.ini", host="h1",
        vars={"dir": str(tmp_path), "what": "old"}, change={"what": "new"},
        state=lambda: {"conf": (tmp_path / "app.conf").read_text()}, healthy=lambda _: True,
        audit_dir=tmp_path / "audit",
    )  # fmt: skip


def test_a_trace_lists_every_point_in_order_and_changes_nothing_else(hooked: Subject) -> None:
    res, points = trace(hooked)
    assert res.rc == 0, res.message
    steps = [p for p in points if p.startswith("steps|")]
    assert steps == [
        "steps|phase.start||1",
        "steps|batch.start||1",
        "steps|step.start|Write new|1",
        "steps|snapshot|Write new|1",
        "steps|action.WriteFile|Write new|1",
        "steps|step.end|Write new|1",
        "steps|step.start|Check it|1",
        "steps|action.Run|Check it|1",  # a shell command is a change to the driver, changed_when or not
        "steps|step.end|Check it|1",
    ]
    assert points[0] == "|run.start||1" and points[-1] == "|run.end||1"
    assert hooked.state() == {"conf": "new"}


def test_kill_points_come_from_the_model_and_the_trace(hooked: Subject, monkeypatch) -> None:
    monkeypatch.setattr("tests.faults.harness.steps_of", lambda _: [("Write {{ what }}", "copy", True),
                                                                   ("Check it", "shell", False)])  # fmt: skip
    _, points = trace(hooked)
    ids = [(k.where, k.step, k.id) for k in kill_points("hooked", points)]
    assert ids == [
        ("boundary", "Write {{ what }}", "before:Write new"),
        ("inside", "Write {{ what }}", "snapshot:Write new"),
        ("inside", "Write {{ what }}", "action.WriteFile:Write new"),
        ("inside", "Write {{ what }}", "end:Write new"),
        ("boundary", "Check it", "before:Check it"),
        ("boundary", "(after the last step)", "run.end:"),
    ]


def test_a_kill_is_a_sigkill_at_the_point_with_the_snapshot_on_disk(hooked: Subject) -> None:
    res = hooked.cli("exec", overrides=hooked.change, fault="kill@steps|action.WriteFile|Write new|1")
    assert res.rc == KILLED, res.message
    assert hooked.state() == {"conf": "new"}  # the change was made, its end never recorded
    (run_id,) = [p.name for p in (hooked.root / ".runbook" / "runs").iterdir()]
    (entry,) = saved_state(hooked, run_id)["hosts"]["h1"]["entries"]
    assert entry["status"] == "running" and entry["snapshots"]
    back = hooked.cli("rollback", "--run", run_id)
    assert back.rc == 0, back.message
    assert hooked.state() == {"conf": "old\n"}


def test_without_the_variable_the_run_is_untouched(hooked: Subject) -> None:
    res = hooked.cli("exec", overrides=hooked.change)
    assert res.rc == 0 and res.doc is not None and res.doc["status"] == "success", res.message
    assert not list(hooked.root.glob("trace-*"))
    assert json.loads(res.stdout)["run_id"] == res.run_id
