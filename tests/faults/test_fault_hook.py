"""RUNBOOK_FAULT, the matrix's hook (runbook/execute/faultpoints.py), on a small runbook run locally: a
trace lists every point in the order the run passes them; a kill at one of them is a SIGKILL there,
with the state written before it on disk; a run without the variable is not touched."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from runbook.execute.lock import lock_dir
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


@pytest.fixture
def locked(hooked: Subject) -> Subject:
    """hooked with a deploy lock of its own (a lock name no other test takes)."""
    name = "hooked-" + os.urandom(4).hex()
    rb = hooked.root / "playbooks" / "hooked.yml"
    rb.write_text(rb.read_text().replace("hosts: all\n", f"hosts: all\nlock: {name}\n"))
    hooked.env["HOOKED_LOCK"] = name
    yield hooked
    shutil.rmtree(lock_dir(name, "h1"), ignore_errors=True)


def _audit(subject: Subject) -> list[dict]:
    assert subject.audit_dir is not None
    return [json.loads(line) for f in sorted(subject.audit_dir.glob("*.jsonl")) for line in f.read_text().splitlines()]


@pytest.mark.parametrize("recovery", ["rollback", "resume"])
def test_a_run_killed_before_its_first_change_leaves_no_lock_after_recovery(locked: Subject, recovery: str) -> None:
    """Killed with its deploy lock taken and nothing changed: the rollback has nothing to undo (exit
    0) and the resumed run carries on, and both release the dead run's lock, say so and audit it."""
    lock = Path(lock_dir(locked.env["HOOKED_LOCK"], "h1"))
    res = locked.cli("exec", overrides=locked.change, fault="kill@steps|step.start|Write new|1")
    assert res.rc == KILLED, res.message
    assert lock.is_dir()  # the dead run's
    (run_id,) = [p.name for p in (locked.root / ".runbook" / "runs").iterdir()]
    if recovery == "rollback":
        back = locked.cli("rollback", "--run", run_id)
        assert back.rc == 0, back.message
        assert "nothing to roll back" in back.message and f"stale lock held by run {run_id}" in back.message
        assert locked.state() == {"conf": "old\n"}
    else:
        back = locked.cli("exec", "--resume", run_id, overrides=locked.change)
        assert back.rc == 0, back.message
        assert locked.state() == {"conf": "new"}
    assert not lock.exists()
    broken = [r for r in _audit(locked) if r["event"] == "lock.broken"]
    assert [(r["run_id"], r["data"]["run_id"]) for r in broken] == [(back.run_id, run_id)]
    assert "is gone" in broken[0]["data"]["why"]


def test_a_rollback_with_nothing_to_undo_leaves_another_runs_lock_alone(locked: Subject) -> None:
    """The run changed nothing; the lock on the host is a live run's: not touched, and no failure."""
    res = locked.cli("exec", overrides=locked.change, fault="kill@steps|step.start|Write new|1")
    assert res.rc == KILLED, res.message
    (run_id,) = [p.name for p in (locked.root / ".runbook" / "runs").iterdir()]
    lock = Path(lock_dir(locked.env["HOOKED_LOCK"], "h1"))
    details = json.loads((lock / "details.json").read_text())
    (lock / "details.json").write_text(json.dumps({**details, "run_id": "someone-else", "pid": os.getpid()}))
    back = locked.cli("rollback", "--run", run_id)
    assert back.rc == 0, back.message
    assert "nothing to roll back" in back.message and "stale lock" not in back.message
    assert json.loads((lock / "details.json").read_text())["run_id"] == "someone-else"


COUNTED = textwrap.dedent(
    """\
    name: counted
    hosts: all
    steps:
      - {name: One, shell: "echo one >> {{ dir | quote }}/ran", changed_when: false}
      - {name: Two, shell: "echo two >> {{ dir | quote }}/ran", changed_when: false}
      - {name: Three, shell: "echo three >> {{ dir | quote }}/ran", changed_when: false}
    always:
      - {name: Finally, shell: "echo always >> {{ dir | quote }}/ran", changed_when: false}
    """
)


@pytest.mark.parametrize(
    ("point", "after"),
    [
        ("steps|step.end|Three|1", ["one", "two", "three"]),  # counted done before its end is told
        ("always|phase.start||1", ["one", "two", "three"]),
        ("always|action.Run|Finally|1", ["one", "two", "three", "always"]),
    ],
)
def test_a_resume_never_runs_a_completed_step_again(hooked: Subject, point: str, after: list[str]) -> None:
    """Steps that end within a split second of each other are each on record as done when they end:
    killed after them, the resumed run runs none of them again; its always: runs (it is a run)."""
    (hooked.root / "playbooks" / "counted.yml").write_text(COUNTED)
    res = hooked.cli("exec", runbook="counted", fault=f"kill@{point}")
    assert res.rc == KILLED, res.message
    ran = hooked.root / "ran"
    assert ran.read_text().split() == after
    (run_id,) = [p.name for p in (hooked.root / ".runbook" / "runs").iterdir()]
    again = hooked.cli("exec", "--resume", run_id, runbook="counted")
    assert again.rc == 0, again.message
    assert ran.read_text().split() == [*after[:3], "always"] + (["always"] if len(after) == 4 else [])
