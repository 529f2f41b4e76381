"""--resume gets back exactly what the run it continues had: -e values and registered results with
their types (int/float/bool keys, None, nested lists, dates, huge ints), and its rollback covers
everything that run changed, on every host and in every batch; always: sees the real outcome."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from runbook.execute.state import Entry, RunState, decode, encode
from tests.core.conftest import PYTHON, REPO, Project
from tests.core.test_interrupt import interrupt, wait_for

VALUES = [
    {1: "one", 2.5: "two and a half", False: "no", None: "nothing", "s": "str"},
    {"nested": [[1, 2], {3: ["three", None]}, ()], "t": (1, "a")},
    dt.date(2026, 1, 2),
    dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    2**70,
    -(10**5000),  # more digits than json takes
    float("inf"),
    {"__runbook_type__": "map"},  # a user's key that looks like the tag
    b"\x00\xffbytes",
    {frozenset({1, 2}): "set key", (1, 2): "tuple key"},
    [True, 1, 1.0, "1", None],
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(VALUES)])
def test_the_state_keeps_values_without_loss(value: object) -> None:
    back = decode(json.loads(json.dumps(encode(value))))
    assert back == value
    assert typed(back) == typed(value)  # the same types, keys included (1 stays 1, not '1')


def typed(v: object) -> object:
    """The value with every part's type beside it (``1 == 1.0 == True`` would hide a change)."""
    if isinstance(v, dict):
        return ("dict", [(typed(k), typed(x)) for k, x in v.items()])
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [typed(x) for x in v])
    return (type(v).__name__, v)


def test_a_saved_state_reads_back_with_its_types(tmp_path: Path) -> None:
    st = RunState(tmp_path, "r1", {"extra_vars": {"m": {1: "a", 2.5: None}, "d": dt.date(2026, 5, 1)}})
    st.host("h").facts["reg"] = {"results": [{"item": 7, "map": {0: [None, 2**80]}}]}
    st.save()
    back = RunState.load(tmp_path, "r1")
    assert back.meta["extra_vars"] == {"m": {1: "a", 2.5: None}, "d": dt.date(2026, 5, 1)}
    assert back.hosts["h"].facts["reg"]["results"][0]["map"] == {0: [None, 2**80]}


def test_each_save_holds_every_change_made_in_place_since_the_last(tmp_path: Path) -> None:
    """Hosts whose state did not change reuse the last save's text; any change, also one made in
    place deep in an entry or in the facts (True -> 1 included), is in the next save."""
    st = RunState(tmp_path, "r2", {"extra_vars": {}})
    for h in ("a", "b"):
        st.host(h).entries.append(Entry("steps", 0, "s", "copy", {"dest": "/x"}, snapshots=[{"k": [1]}]))
        st.host(h).facts["flag"] = True
    st.save()
    a = st.host("a")
    changes = [
        lambda: setattr(a.entries[0], "status", "changed"),
        lambda: a.entries[0].snapshots.append({"content": b"old"}),
        lambda: a.entries[0].snapshots[0]["k"].append(2),
        lambda: a.entries[0].args.update(mode="0600"),
        lambda: a.facts.update(flag=1),
        lambda: setattr(a, "last_completed", 0),
        lambda: a.entries.append(Entry("steps", 1, "t", "shell", {"cmd": "x"}, loop_index=0)),
        lambda: a.entries.append(Entry("steps", 2, "u", "shell", {"cmd": "y"})),
        lambda: a.entries.remove(a.entries[1]),  # a provisional entry dropped: the later ones move up
        lambda: a.entries.insert(0, Entry("steps", 3, "v", "shell", {"cmd": "z"})),
        lambda: a.facts.clear(),
        lambda: setattr(a, "status", "ok"),
        lambda: a.facts.update(flag=False),
    ]
    for change in changes:
        change()
        st.save()
        back = RunState.load(tmp_path, "r2")
        for h in ("a", "b"):
            saved, live = back.hosts[h], st.hosts[h]
            assert typed([vars(e) for e in saved.entries]) == typed([vars(e) for e in live.entries])
            assert typed(saved.facts) == typed(live.facts)
            assert (saved.last_completed, saved.status) == (live.last_completed, live.status)


RUNBOOK = """
hosts: web
serial: 1
rollback: auto
rollback_scope: all
steps:
  - name: config
    copy: {content: "v2 {{ inventory_hostname }}\\n", dest: "{{ d }}/{{ inventory_hostname }}.conf"}
  - name: probe
    shell: "echo {{ m[1] }}"
    register: probed
    changes: false
  - name: facts
    set_fact:
      ports: {8080: web, 9090: [null, 2.5]}
  - name: wait
    shell: |
      test {{ inventory_hostname }} = h2 || exit 0
      touch {{ d }}/h2.waiting
      test -e {{ d }}/fail && exit 7
      while [ ! -e {{ d }}/go ]; do sleep 0.05; done
    changes: false
  - name: use
    debug:
      msg: "{{ m[1] }}|{{ m[2.5] }}|{{ m[false] }}|{{ m.nested[1][3][1] is none }}|{{ (big // 2) }}|{{ day.year }}|{{ probed.stdout }}|{{ ports[8080] }}|{{ ports[9090][1] * 2 }}"
always:
  - name: notify
    shell: "echo {{ inventory_hostname }} {{ run.status }} >> {{ d }}/notified"
"""

EXTRA = (
    "{m: {1: one, 2.5: two, false: 'no', nested: [[1, 2], {3: [x, null]}]},"
    " big: 2361183241434822606848, day: 2026-01-02}"
)


@pytest.fixture
def interrupted(project: Project, tmp_path: Path) -> tuple[str, Path]:
    """A run stopped (SIGTERM, not rolled back) while h2 waits: h1 is done, h2 changed its config."""
    d = tmp_path / "d"
    d.mkdir()
    for h in ("h1", "h2"):
        (d / f"{h}.conf").write_text(f"v1 {h}\n")
    project.inventory("[web]\nh1 ansible_connection=local\nh2 ansible_connection=local\n")
    project.runbook("dep", RUNBOOK)
    env = {**os.environ, "RUNBOOK_AUDIT": "0", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [PYTHON, "-m", "runbook", "exec", "dep", "-i", "inv", "-e", f"d={d}", "-e", EXTRA],
        cwd=project.root, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(d / "h2.waiting", proc)
    code, out, err = interrupt(proc, signal.SIGTERM)
    assert code == 130, out + err
    assert "NOT rolled back" in out
    assert (d / "h1.conf").read_text() == "v2 h1\n" and (d / "h2.conf").read_text() == "v2 h2\n"
    (d / "h2.waiting").unlink()
    assert not (d / "notified").exists()  # an interrupted run skips always:
    run_id = next(p.name for p in (project.root / ".runbook" / "runs").iterdir())
    return run_id, d


def test_resume_restores_extra_vars_and_registered_results_with_their_types(
    project: Project, interrupted: tuple[str, Path]
) -> None:
    run_id, d = interrupted
    (d / "go").touch()
    res, doc = project.exec_json("dep", "--resume", run_id)
    assert res.exit_code == 0, res.output
    assert project.steps(doc, "h2")["use"]["msg"] == "one|two|no|True|1180591620717411303424|2026|one|web|5.0"
    assert "config" not in project.steps(doc, "h2")  # completed before: not run again


def test_a_failed_resume_rolls_back_what_the_first_run_changed_on_every_host(
    project: Project, interrupted: tuple[str, Path]
) -> None:
    run_id, d = interrupted
    (d / "fail").touch()
    res, doc = project.exec_json("dep", "--resume", run_id)
    assert res.exit_code == 1, res.output
    assert doc["status"] == "rolled_back"
    # h1 finished in the first run (batch 1); h2 failed in batch 2 of the resumed run: both go back
    assert (d / "h1.conf").read_text() == "v1 h1\n"
    assert (d / "h2.conf").read_text() == "v1 h2\n"
    assert doc["hosts"]["h1"]["rollback"] == "ok" and doc["hosts"]["h2"]["rollback"] == "ok"
    assert sorted((d / "notified").read_text().splitlines()) == ["h1 rolled_back", "h2 rolled_back"]
    state = json.loads((project.root / ".runbook" / "runs" / run_id / "state.json").read_text())
    assert {e["status"] for h in ("h1", "h2") for e in state["hosts"][h]["entries"]} == {"rolled_back"}


def test_a_resume_whose_rollback_fails_says_so_in_always(
    project: Project, interrupted: tuple[str, Path]
) -> None:
    run_id, d = interrupted
    (d / "fail").touch()
    (d / "h1.conf").unlink()
    (d / "h1.conf").mkdir()  # h1's config cannot be restored over a directory
    (d / "h1.conf" / "keep").touch()
    res, doc = project.exec_json("dep", "--resume", run_id)
    assert res.exit_code == 4, res.output
    assert doc["status"] == "rollback_failed"
    assert doc["hosts"]["h1"]["rollback"] == "failed" and doc["hosts"]["h2"]["rollback"] == "ok"
    assert (d / "h2.conf").read_text() == "v1 h2\n"
    # the notification does not claim the previous version is back
    assert sorted((d / "notified").read_text().splitlines()) == ["h1 rollback_failed", "h2 rollback_failed"]


def test_resume_targets_the_hosts_of_the_run_it_continues(project: Project, tmp_path: Path) -> None:
    project.inventory("[web]\nh1 ansible_connection=local\nh2 ansible_connection=local\n")
    project.runbook(
        "lim",
        """
        hosts: web
        rollback: none
        steps:
          - name: config
            copy: {content: "v2\\n", dest: "{{ d }}/{{ inventory_hostname }}.conf"}
          - name: gate
            shell: "test -e {{ d }}/gate"
        """,
    )
    d = tmp_path / "d"
    d.mkdir()
    res, doc = project.exec_json("lim", "-l", "h1", "-e", f"d={d}")
    assert res.exit_code == 1
    (d / "gate").touch()
    res, doc = project.exec_json("lim", "--resume", doc["run_id"])  # no -l: the run's own
    assert res.exit_code == 0, res.output
    assert sorted(doc["hosts"]) == ["h1"]
    assert not (d / "h2.conf").exists()
