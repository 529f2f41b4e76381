"""`runbook exec --engine ansible` with --start-at, --resume and approve: steps, next to the native
engine on the same runbook (real ansible-playbook): the same steps run, the same end state, exit
codes and recap, the same run state (`runbook rollback --run ID` undoes an ansible-engine run)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from runbook.cli.main import cli
from tests.ansible_engine.test_compile import RUNBOOK, _fresh, _tree
from tests.ansible_engine.test_engine_option import _steps, project  # noqa: F401 - the fixture

ENGINES = ("native", "ansible")
# the last step reads what an earlier one registered: a resumed run must have it back
READS_HEALTH = RUNBOOK.replace(
    'shell: "test {{ fail_at | quote }} != verify"',
    'shell: "test {{ fail_at | quote }} != verify && test {{ health.rc }} = 0"',
)
NO_ROLLBACK = READS_HEALTH.replace("max_fail_percentage: 0\n", "max_fail_percentage: 0\nrollback: none\n")
APPROVE = RUNBOOK.replace("steps:\n", "steps:\n  - name: Go ahead?\n    approve: {prompt: deploy now}\n", 1)


def _write(project: Path, text: str) -> None:  # noqa: F811
    (project / "playbooks" / "small-deploy.yml").write_text(text)


def _cli(*args: str) -> tuple[int, dict[str, Any]]:
    res = CliRunner().invoke(cli, ["exec", "small-deploy", "-i", "inv", "--output", "json", *args])
    assert "{\n" in res.output, res.output
    return res.exit_code, json.loads(res.output[res.output.index("{\n") :])


def _state(project: Path, run_id: str) -> dict[str, Any]:  # noqa: F811
    from runbook.execute.state import RunState

    st = RunState.load(project / ".runbook", run_id)
    return {
        h: (hs.last_completed, [(e.index, e.name, e.module, e.status, len(e.snapshots)) for e in hs.entries])
        for h, hs in st.hosts.items()
    }


def _engine(engine: str) -> tuple[str, ...]:
    return ("--engine", engine) if engine == "ansible" else ()


# ------------------------------------------------------------------------------ fast
def test_start_at_leaves_the_earlier_steps_out_and_keeps_preflight(project: Path) -> None:  # noqa: F811
    from runbook.session.ansible_engine import playbook_for
    from runbook.session.run import load_checked

    rb = load_checked(project / "playbooks" / "small-deploy.yml")
    plays = yaml.safe_load(playbook_for(rb, dry_run=False, start=2))
    assert [t["name"] for t in plays[0]["tasks"]] == ["Enough disk", "The target's parent exists"]
    block = plays[1]["tasks"][0]
    assert [t["name"] for t in block["block"]] == [s.name for s in rb.steps[2:]]
    # the rescue still names every step (an undo of a step that did not run is skipped: no result)
    assert "undo: App directory" in [t["name"] for t in block["rescue"]]


def test_a_resumed_playbook_skips_completed_steps_per_host_and_puts_their_results_back(
    project: Path,  # noqa: F811
) -> None:
    from runbook.session.ansible_engine import RESUMED_TASK, playbook_for
    from runbook.session.run import load_checked

    rb = load_checked(project / "playbooks" / "small-deploy.yml")
    plays = yaml.safe_load(playbook_for(rb, dry_run=False, resumed=frozenset({"runbook_step_2", "health"})))
    assert [p["name"] for p in plays] == ["small-deploy"]  # no pre-flight again on a resume (as native)
    tasks = plays[0]["tasks"][0]["block"]
    config = next(t for t in tasks if t["name"] == "Config")
    assert config["when"][0] == "not ((runbook_resume_after | default(-1) | int) >= 1)"
    back = [t for t in tasks if t["name"].startswith(RESUMED_TASK)]
    assert [t["name"] for t in back] == [RESUMED_TASK + "Config", RESUMED_TASK + "Health with retries"]
    assert back[0]["ansible.builtin.set_fact"] == {
        "runbook_step_2": "{{ runbook_resumed['runbook_step_2'] }}"
    }
    assert back[0]["when"][0] == "(runbook_resume_after | default(-1) | int) >= 1"


# ------------------------------------------------------------------------------ real ansible-playbook
@pytest.mark.slow
def test_start_at_runs_preflight_then_from_that_step_as_native(project: Path) -> None:  # noqa: F811
    docs, trees = {}, {}
    for engine in ENGINES:
        target = _fresh(project / engine)
        code, docs[engine] = _cli("-e", f"target={target}", "--start-at", "Config",
                                  *_engine(engine))  # fmt: skip
        assert code == 0, docs[engine]["message"]
        trees[engine] = _tree(target)
    assert _steps(docs["ansible"]) == _steps(docs["native"])
    names = [s[2] for s in _steps(docs["ansible"])]
    assert names[:3] == ["Enough disk", "The target's parent exists", "Config"]
    assert "App directory" not in names
    assert trees["ansible"] == trees["native"] and trees["ansible"]["keep.txt"] == ("new\n", 0o600)
    for engine in ENGINES:  # a step that is not there: a usage error before anything runs
        res = CliRunner().invoke(
            cli, ["exec", "small-deploy", "-i", "inv", "--start-at", "Nope", *_engine(engine)]
        )
        assert res.exit_code == 2 and "--start-at: no step named 'Nope'" in res.output


def _failed_run(project: Path, engine: str) -> tuple[Path, str]:  # noqa: F811
    """A run that fails at the last step with `rollback: none`: its changes stay, its state says
    what each host completed."""
    _write(project, NO_ROLLBACK)
    target = _fresh(project / engine)
    code, doc = _cli("-e", f"target={target}", "-e", "fail_at=verify", *_engine(engine))
    assert code == 1 and doc["status"] == "failed", doc["message"]
    return target, doc["run_id"]


@pytest.mark.slow
def test_resume_skips_what_was_completed_and_finishes_as_native(project: Path) -> None:  # noqa: F811
    docs, trees, states = {}, {}, {}
    for engine in ENGINES:
        target, run_id = _failed_run(project, engine)
        states[engine] = _state(project, run_id)
        code, docs[engine] = _cli("--resume", run_id, "-e", "fail_at=", *_engine(engine))
        assert code == 0, docs[engine]["message"]
        trees[engine] = _tree(target)
        assert docs[engine]["run_id"] == run_id + "-resume"
    # the run it resumes was saved the same way by both engines: completed steps, snapshots
    assert states["ansible"] == states["native"]
    assert states["ansible"]["localhost"][0] == 4
    # only the step that failed runs again (no pre-flight, nothing completed re-run), reading what
    # the earlier run registered (health.rc)
    assert _steps(docs["ansible"]) == _steps(docs["native"])
    assert [s[2] for s in _steps(docs["ansible"])] == ["Injected failure", "Record that the run ended"]
    assert trees["ansible"] == trees["native"]
    assert trees["ansible"]["app/app.conf"][0] == "version=2.0\n"


@pytest.mark.slow
def test_a_resumed_run_that_fails_again_undoes_the_earlier_runs_changes(project: Path) -> None:  # noqa: F811
    docs, trees = {}, {}
    for engine in ENGINES:
        target, run_id = _failed_run(project, engine)
        _write(project, READS_HEALTH)  # rollback: auto now; the run's snapshots come from its state
        code, docs[engine] = _cli("--resume", run_id, *_engine(engine))
        assert code == 1 and docs[engine]["status"] == "rolled_back", docs[engine]["message"]
        trees[engine] = _tree(target)
        assert _state(project, run_id)["localhost"][1][0][3] == "rolled_back"
    assert (
        trees["ansible"]
        == trees["native"]
        == {"keep.txt": ("old\n", 0o600), "always.log": ("done\ndone\n", 0o644)}
    )
    undone = [s for s in _steps(docs["ansible"]) if s[0] == "rollback"]
    assert undone == [s for s in _steps(docs["native"]) if s[0] == "rollback"]
    assert [s[2] for s in undone] == [
        "undo: Start marker",
        "undo: Existing file is replaced",
        "undo: Config",
        "undo: App directory",
    ]


@pytest.mark.slow
def test_runbook_rollback_undoes_an_ansible_engine_run(project: Path) -> None:  # noqa: F811
    target, run_id = _failed_run(project, "ansible")
    assert (target / "app" / "app.conf").exists()
    _write(project, READS_HEALTH)  # rollback: auto
    res = CliRunner().invoke(cli, ["rollback", "small-deploy", "--run", run_id, "--yes"])
    assert res.exit_code == 0, res.output
    assert _tree(target)["keep.txt"] == ("old\n", 0o600) and "app" not in _tree(target)
    assert {e[3] for e in _state(project, run_id)["localhost"][1]} == {"rolled_back"}


def _approvals(engine: str, target: Path, **options: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    import runbook

    seen: list[tuple[Any, ...]] = []

    def keep(e: Any) -> None:
        if e.step == "Go ahead?":  # its start, the approval, its end: in that order
            seen.append((e.kind, e.host, e.phase, e.outcome, e.data.get("approved_by"), e.data.get("prompt")))

    out = runbook.run("small-deploy", inventory=["inv"], vars={"target": str(target)}, engine=engine,
                      on_event=keep, **options)  # fmt: skip
    return out, seen


@pytest.mark.slow
def test_approve_without_yes_and_no_terminal_is_refused_as_native(project: Path) -> None:  # noqa: F811
    _write(project, APPROVE)
    docs = {}
    for engine in ENGINES:
        target = _fresh(project / engine)
        code, docs[engine] = _cli("-e", f"target={target}", *_engine(engine))
        assert code == 3 and docs[engine]["status"] == "refused"
        assert "app" not in _tree(target)  # nothing was changed
    a, n = docs["ansible"]["hosts"]["localhost"], docs["native"]["hosts"]["localhost"]
    assert _steps(docs["ansible"]) == _steps(docs["native"])
    assert (a["stats"], a["failure"], a["rollback"]) == (n["stats"], n["failure"], n["rollback"])
    assert "not approved (no terminal to ask and --yes not given)" in a["failure"]
    assert docs["ansible"]["message"] == docs["native"]["message"]


@pytest.mark.slow
def test_approve_with_yes_records_the_approvers_as_native(project: Path) -> None:  # noqa: F811
    _write(project, APPROVE)
    got = {}
    for engine in ENGINES:
        out, got[engine] = _approvals(engine, _fresh(project / engine), yes=True, approvers=["alice"])
        assert out.exit_code == 0
        (step,) = [r for r in out.result.hosts["localhost"].records if r.name == "Go ahead?"]
        assert (step.outcome, step.msg) == ("ok", "approved by alice (--yes)")
    assert (
        got["ansible"]
        == got["native"]
        == [
            ("step.start", "localhost", "steps", None, None, None),
            ("approval", "localhost", "steps", "approved", "alice (--yes)", "deploy now"),
            ("step.end", "localhost", "steps", "ok", None, None),
        ]
    )


@pytest.mark.slow
def test_the_console_is_asked_and_a_no_ends_the_run_as_native(project: Path) -> None:  # noqa: F811
    from runbook.session.request import Hooks

    _write(project, APPROVE)
    for answer, code in ((True, 0), (False, 3)):
        got, asked = {}, {}
        for engine in ENGINES:
            questions: list[str] = []

            def confirm(q: str, questions: list[str] = questions, answer: bool = answer) -> bool:
                questions.append(q)
                return answer

            target = _fresh(project / f"{engine}-{answer}")
            out, got[engine] = _approvals(engine, target, hooks=Hooks(confirm=confirm))
            assert out.exit_code == code, out.result.message
            assert ("app" in _tree(target)) is answer
            asked[engine] = questions
        assert asked["ansible"] == asked["native"] == ["[localhost] deploy now"]
        assert got["ansible"] == got["native"]


@pytest.mark.slow
def test_an_interrupted_run_is_resumed_and_its_changes_undone_when_the_resume_fails(project: Path) -> None:  # noqa: F811
    import signal
    import subprocess
    import sys
    import time

    text = READS_HEALTH.replace(
        "  - name: Health with retries\n",
        '  - name: Long step\n    shell: "sleep {{ nap }}"\n  - name: Health with retries\n',
    )
    _write(project, text)
    target = _fresh(project / "t")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbook", "exec", "small-deploy", "-i", "inv", "-e", f"target={target}",
         "-e", "nap=120", "--engine", "ansible", "--output", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project,
    )  # fmt: skip
    try:
        state = project / ".runbook" / "runs"
        done: list[Any] = []
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:  # the step before the long one saved
            done = [json.loads(p.read_text()) for p in state.glob("*/state.json")] if state.exists() else []
            if done and done[0]["hosts"].get("localhost", {}).get("last_completed") == 3:
                break
            time.sleep(0.1)
        assert done and done[0]["hosts"]["localhost"]["last_completed"] == 3
        time.sleep(1.0)  # (not a timing assertion: lets the long step start)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    run_id = json.loads(out[out.index("{\n") :])["run_id"]
    assert (target / "app" / "app.conf").exists()  # interrupted: nothing rolled back
    code, doc = _cli("--resume", run_id, "-e", "nap=0", "-e", "fail_at=verify", "--engine", "ansible")
    assert code == 1 and doc["status"] == "rolled_back", doc["message"]
    ran = [s[2] for s in _steps(doc) if s[0] == "steps"]
    assert ran == ["Long step", "Health with retries", "Injected failure"]  # completed ones not re-run
    assert _tree(target)["keep.txt"] == ("old\n", 0o600) and "app" not in _tree(target)


# ------------------------------------------------------------------------------ the step plugin alone
@pytest.mark.slow
def test_under_plain_ansible_an_approve_step_fails_and_never_approves(tmp_path: Path, ansible) -> None:
    marker = tmp_path / "after"
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - runbook.core.step: {kind: approve, args: {prompt: go}}\n"
        f"    - runbook.core.step: {{kind: shell, args: 'touch {marker}'}}\n"
    )
    res = ansible().playbook(pb, "localhost,", "-c", "local", check=False)
    assert res.returncode == 2 and "approval required but no way to ask" in res.stdout
    assert not marker.exists()
    res = ansible().playbook(pb, "localhost,", "-c", "local", "--check", "-v", check=False)
    assert res.returncode == 0 and "would ask for approval: go" in res.stdout, res.stdout


@pytest.mark.slow
def test_a_loops_items_each_save_their_snapshots(tmp_path: Path, ansible) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: localhost\n  gather_facts: false\n  vars: {runbook_run_id: r1}\n  tasks:\n"
        f"    - runbook.core.step: {{kind: copy, args: {{content: new, dest: '{tmp_path}/{{{{ item }}}}'}}}}\n"
        "      loop: [a, b]\n"
    )
    snaps = tmp_path / "snaps"
    res = ansible(RUNBOOK_SNAPSHOT_DIR=str(snaps)).playbook(pb, "localhost,", "-c", "local", check=False)
    assert res.returncode == 0, res.stdout
    saved = sorted(json.loads(p.read_text())["path"] for p in (snaps / "r1" / "localhost").glob("*.json"))
    assert saved == [f"{tmp_path}/a", f"{tmp_path}/b"]
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text() == "new"


@pytest.mark.slow
def test_at_a_terminal_the_operator_types_a_name_and_answers_as_native(project: Path) -> None:  # noqa: F811
    import sys

    import pexpect

    _write(project, APPROVE)
    for answer, code in (("yes", 0), ("no", 3)):
        approvals = {}
        for engine in ENGINES:
            target = _fresh(project / f"{engine}-{answer}")
            audit = project / f"audit-{engine}-{answer}"
            child = pexpect.spawn(
                sys.executable,
                ["-m", "runbook", "exec", "small-deploy", "-i", "inv", "-e", f"target={target}",
                 "--audit-dir", str(audit), *_engine(engine)],
                cwd=str(project), env={**os.environ, "RUNBOOK_AUDIT": "1"}, encoding="utf-8", timeout=120,
                dimensions=(50, 200),
            )  # fmt: skip
            try:
                child.expect("deploy now -- approver, name")  # bounded: 120 s each
                child.sendline("carol")
                child.expect("to confirm")
                child.sendline(answer)
                child.expect(pexpect.EOF)
            finally:
                child.close(force=True)
            assert child.exitstatus == code, child.before
            assert ("app" in _tree(target)) is (answer == "yes")
            (trail,) = audit.glob("*.jsonl")
            records = [json.loads(line) for line in trail.read_text().splitlines() if line.strip()]
            approvals[engine] = [
                (r.get("host"), r.get("step"), r.get("outcome"), (r.get("data") or {}).get("approved_by"))
                for r in records
                if (r.get("event") or r.get("kind")) == "approval"
            ]
        assert approvals["ansible"] == approvals["native"]
        assert approvals["ansible"][0][3] == ("carol" if answer == "yes" else "declined by carol")


@pytest.mark.slow
def test_each_host_resumes_where_it_stopped_as_native(project: Path) -> None:  # noqa: F811
    text = (
        NO_ROLLBACK.replace("  target: /tmp/never\n", "")
        .replace('  fail_at: ""\n', "")
        .replace("serial: [1, 2]\nmax_fail_percentage: 0\n", "max_fail_percentage: 100\n")
    )
    assert "serial" not in text and "fail_at: " not in text
    _write(project, text)

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        res = CliRunner().invoke(cli, ["exec", "small-deploy", "--output", "json", *args])
        return res.exit_code, json.loads(res.output[res.output.index("{\n") :])

    steps: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
    for engine in ENGINES:
        (project / engine).mkdir()
        a, b = _fresh(project / engine / "a"), _fresh(project / engine / "b")
        inv = project / f"inv-{engine}"
        inv.write_text(
            f"alpha ansible_connection=local target={a} fail_at=verify\n"
            f"beta ansible_connection=local target={b} fail_at=no\n"
        )
        code, first = run("-i", str(inv), *_engine(engine))
        assert code == 1 and first["hosts"]["alpha"]["failed"] and not first["hosts"]["beta"]["failed"]
        code, doc = run("--resume", first["run_id"], "-e", "fail_at=no", *_engine(engine))  # its inventory
        assert code == 0, doc["message"]
        steps[engine] = {
            h: [(s["phase"], s["name"], s["outcome"]) for s in doc["hosts"][h]["steps"]]
            for h in ("alpha", "beta")
        }
    assert steps["ansible"] == steps["native"]
    assert steps["ansible"]["alpha"] == [
        ("steps", "Injected failure", "ok"),
        ("always", "Record that the run ended", "changed"),
    ]
    assert steps["ansible"]["beta"] == [("always", "Record that the run ended", "changed")]
    for host in ("a", "b"):
        assert _tree(project / "ansible" / host) == _tree(project / "native" / host)


@pytest.mark.slow
def test_a_run_state_that_cannot_be_written_refuses_the_run_as_native(project: Path) -> None:  # noqa: F811
    import runbook

    blocked = project / "not-a-directory"
    blocked.write_text("")
    outs, trees = {}, {}
    for engine in ENGINES:
        target = _fresh(project / engine)
        outs[engine] = runbook.run("small-deploy", inventory=["inv"], vars={"target": str(target)},
                                   engine=engine, state_root=blocked)  # fmt: skip
        assert outs[engine].exit_code == 3 and outs[engine].result.status == "refused"
        trees[engine] = _tree(target)
    # nothing was changed; always: ran (the team hears of the run)
    assert (
        trees["ansible"] == trees["native"] == {"keep.txt": ("old\n", 0o600), "always.log": ("done\n", 0o644)}
    )
    said = {e: o.result.message.replace(o.result.run_id, "ID") for e, o in outs.items()}
    assert said["ansible"] == said["native"]
    assert "cannot write the run state" in outs["ansible"].result.message


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [("native", "ansible"), ("ansible", "native")])
def test_a_run_of_one_engine_is_resumed_by_the_other(project: Path, first: str, then: str) -> None:  # noqa: F811
    target, run_id = _failed_run(project, first)
    _write(project, READS_HEALTH)
    code, doc = _cli("--resume", run_id, *_engine(then))  # reads health.rc the first run registered
    assert code == 1 and doc["status"] == "rolled_back", doc["message"]
    assert [s[2] for s in _steps(doc) if s[0] == "rollback"] == [
        "undo: Start marker",
        "undo: Existing file is replaced",
        "undo: Config",
        "undo: App directory",
    ]
    assert _tree(target)["keep.txt"] == ("old\n", 0o600) and "app" not in _tree(target)
