"""`runbook exec/plan NAME --engine ansible`: the compiled playbook run by ansible-runner (real
ansible-playbook), its events streamed into runbook's console, JSON, JUnit and audit trail, with
the native engine's end state, step records and exit codes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from runbook.cli.main import cli
from tests.ansible_engine.test_compile import RUNBOOK, _fresh, _tree


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    monkeypatch.setenv("ANSIBLE_HOME", str(tmp_path / "ansible-home"))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "ansible-home" / "tmp"))
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")])))
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "small-deploy.yml").write_text(RUNBOOK)
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")
    return tmp_path


def _exec(*args: str) -> tuple[int, dict[str, Any]]:
    res = CliRunner().invoke(cli, ["exec", "small-deploy", "-i", "inv", "--output", "json", *args])
    assert res.exit_code in (0, 1, 3, 4), res.output
    start = res.output.index("{\n")
    return res.exit_code, json.loads(res.output[start:])


def _steps(doc: dict[str, Any]) -> list[tuple[str, int, str, str, str]]:
    return [
        (s["phase"], s["index"], s["name"], s["module"], s["outcome"])
        for s in doc["hosts"]["localhost"]["steps"]
    ]


def _shape(doc: dict[str, Any]) -> tuple[Any, ...]:
    host = doc["hosts"]["localhost"]
    return (sorted(doc), sorted(host), sorted(host["stats"]), [sorted(s) for s in host["steps"]])


# ------------------------------------------------------------------------------ fast
def test_the_engine_is_a_request_field_checked_up_front() -> None:
    from runbook.errors import UsageError
    from runbook.session import RunRequest

    assert RunRequest("x").engine == "native"
    assert RunRequest("x", engine="ansible").engine == "ansible"
    with pytest.raises(UsageError, match="unknown engine 'awx'"):
        RunRequest("x", engine="awx")


def test_unknown_engine_on_the_command_line_is_a_usage_error(project: Path) -> None:
    res = CliRunner().invoke(cli, ["exec", "small-deploy", "-i", "inv", "--engine", "awx"])
    assert res.exit_code == 2 and "awx" in res.output


def test_the_playbook_run_drops_the_checked_window_and_a_plans_lock(project: Path) -> None:
    from runbook.session.ansible_engine import playbook_for, task_map
    from runbook.session.run import load_checked

    text = RUNBOOK.replace(
        "max_fail_percentage: 0\n",
        "max_fail_percentage: 0\nlock: deploy\nwindow: {start: '00:00', end: '23:59'}\n",
    )
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    rb = load_checked(project / "playbooks" / "small-deploy.yml")
    real = yaml.safe_load(playbook_for(rb, dry_run=False))
    names = [t["name"] for t in real[0]["tasks"]]
    assert "inside the maintenance window" not in names  # the session checked it (--force-window skips)
    assert real[1]["tasks"][0]["block"][0]["name"] == "deploy lock"
    plan = yaml.safe_load(playbook_for(rb, dry_run=True))
    assert all(t["name"] != "deploy lock" for t in plan[1]["tasks"][0]["block"])
    # a rescue task is the rollback of its step; an always step is found in the always phase
    tasks = task_map(rb)
    assert [(i.phase, i.name, i.undo_of) for i in tasks["undo: Config"]] == [
        ("rollback", "undo: Config", "Config")
    ]
    assert tasks["Record that the run ended"][0].phase == "always"


# ------------------------------------------------------------------------------ real ansible-playbook
@pytest.mark.slow
def test_same_end_state_and_step_records_as_native(project: Path) -> None:
    native = _fresh(project / "native")
    code_n, doc_n = _exec("-e", f"target={native}")
    viaans = _fresh(project / "ansible")
    code_a, doc_a = _exec("-e", f"target={viaans}", "--engine", "ansible")
    assert (code_n, code_a) == (0, 0)
    assert _tree(viaans) == _tree(native)
    assert _steps(doc_a) == _steps(doc_n)
    commands = [(s["command"] or "").replace(str(native), "T") for s in doc_n["hosts"]["localhost"]["steps"]]
    assert [
        (s["command"] or "").replace(str(viaans), "T") for s in doc_a["hosts"]["localhost"]["steps"]
    ] == commands
    assert "mkdir -p -- T/app" in commands[2]
    assert doc_a["hosts"]["localhost"]["stats"] == doc_n["hosts"]["localhost"]["stats"]
    assert _shape(doc_a) == _shape(doc_n) and doc_a["status"] == "success"
    from runbook.execute.clients.ansible_io import root

    # the private data directory is gone (the SSH masters' directory of this process stays to its exit)
    assert [p.name for p in root().glob(f"{os.getpid()}-*")] in ([], [f"{os.getpid()}-cp"])


@pytest.mark.slow
def test_injected_failure_rolled_back_exit_1_same_json(project: Path) -> None:
    native = _fresh(project / "native")
    code_n, doc_n = _exec("-e", f"target={native}", "-e", "fail_at=verify")
    viaans = _fresh(project / "ansible")
    code_a, doc_a = _exec("-e", f"target={viaans}", "-e", "fail_at=verify", "--engine", "ansible")
    assert (code_n, code_a) == (1, 1)
    assert doc_a["status"] == doc_n["status"] == "rolled_back"
    assert _tree(viaans) == _tree(native)
    assert _tree(viaans)["keep.txt"] == ("old\n", 0o600) and "app" not in _tree(viaans)
    assert _shape(doc_a) == _shape(doc_n)
    ha, hn = doc_a["hosts"]["localhost"], doc_n["hosts"]["localhost"]
    assert (ha["rollback"], ha["failed"], ha["failure"]) == (hn["rollback"], hn["failed"], hn["failure"])
    undone = [s for s in _steps(doc_a) if s[0] == "rollback"]
    assert undone == [s for s in _steps(doc_n) if s[0] == "rollback"]
    assert [s[2] for s in undone] == [
        "undo: Start marker",
        "undo: Existing file is replaced",
        "undo: Config",
        "undo: App directory",
    ]
    assert {s[4] for s in undone} == {"rolled_back"}


@pytest.mark.slow
def test_failed_preflight_exits_3_nothing_changed(project: Path) -> None:
    target = project / "missing-parent" / "t"
    code, doc = _exec("-e", f"target={target}", "--engine", "ansible")
    assert code == 3 and doc["status"] == "preflight_failed"
    assert "pre-flight 'The target's parent exists'" in doc["hosts"]["localhost"]["failure"]
    assert {s[0] for s in _steps(doc)} == {"preflight"}
    assert not target.parent.exists()


@pytest.mark.slow
def test_plan_is_check_mode_and_changes_nothing(project: Path) -> None:
    target = _fresh(project / "t")
    res = CliRunner().invoke(
        cli, ["plan", "small-deploy", "-i", "inv", "-e", f"target={target}", "--engine", "ansible"]
    )
    assert res.exit_code == 0, res.output
    assert "App directory" in res.output
    doc = json.loads(
        CliRunner().invoke(cli, ["plan", "small-deploy", "-i", "inv", "-e", f"target={target}", "--engine", "ansible",
                                 "--output", "json"]).output
    )  # fmt: skip
    (config,) = [s for s in doc["hosts"]["localhost"]["steps"] if s["name"] == "Config"]
    assert config["outcome"] == "changed" and config["planned"], config  # what it would write, shown
    assert _tree(target) == {"keep.txt": ("old\n", 0o600)}


@pytest.mark.slow
def test_audit_trail_and_junit_of_an_ansible_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runbook.audit.keys import generate_key

    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    key = project / "audit_key"
    generate_key(key, "ops@runbook")
    audit = project / "audit"
    target = _fresh(project / "t")
    junit = project / "junit.xml"
    code, _doc = _exec("-e", f"target={target}", "-e", "fail_at=verify", "--engine", "ansible",
                       "--audit-dir", str(audit), "--audit-key", str(key), "--junit-file", str(junit))  # fmt: skip
    assert code == 1
    (trail,) = audit.glob("*.jsonl")
    records = [json.loads(line) for line in trail.read_text().splitlines() if line.strip()]
    kinds = [r.get("event") or r.get("kind") for r in records]
    assert "run.start" in kinds and "run.end" in kinds and "rollback.step" in kinds
    starts = [r for r in records if (r.get("event") or r.get("kind")) == "run.start"]
    assert json.dumps(starts[0]).count('"engine": "ansible"') == 1
    ends = [r for r in records if (r.get("event") or r.get("kind")) == "step.end"]
    assert any(r.get("outcome") == "failed" and r.get("step") == "Injected failure" for r in ends)
    res = CliRunner().invoke(cli, ["audit", "verify", str(audit), "--allowed-signers", str(key) + ".pub"])
    assert res.exit_code == 0, res.output
    xml = junit.read_text()
    assert 'failures="1"' in xml and "undo: Start marker" in xml


@pytest.mark.slow
def test_over_sshd_host_keys_checked(project: Path, ssh_lab, request: pytest.FixtureRequest) -> None:
    h = ssh_lab.hosts[0]
    (project / "inv").write_text(
        f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user=root "
        f"ansible_ssh_private_key_file={ssh_lab.key} ansible_python_interpreter=python3 "
        "ansible_ssh_common_args='-F /dev/null'\n"
    )
    target = f"/tmp/runbook-engine-ansible-{os.getpid()}-{h.name}"
    request.addfinalizer(lambda: shutil.rmtree(target, ignore_errors=True))
    res = CliRunner().invoke(
        cli, ["exec", "small-deploy", "-i", "inv", "-e", f"target={target}", "--engine", "ansible",
              "--known-hosts", str(ssh_lab.known_hosts), "--output", "json"],
    )  # fmt: skip
    doc = json.loads(res.output[res.output.index("{\n") :])
    assert res.exit_code == 0, res.output
    assert [s["outcome"] for s in doc["hosts"][h.name]["steps"]][:3] == ["ok", "ok", "changed"]
    # an unknown host key is refused before any change (never accepted silently)
    empty = project / "empty_known_hosts"
    empty.write_text("")
    res = CliRunner().invoke(
        cli, ["exec", "small-deploy", "-i", "inv", "-e", f"target={target}-2", "--engine", "ansible",
              "--known-hosts", str(empty), "--output", "json"],
    )  # fmt: skip
    assert res.exit_code == 3, res.output
    doc = json.loads(res.output[res.output.index("{\n") :])
    native = CliRunner().invoke(
        cli, ["exec", "small-deploy", "-i", "inv", "-e", f"target={target}-2", "--known-hosts", str(empty), "--output", "json"],
    )  # fmt: skip
    assert native.exit_code == 3, native.output
    doc_n = json.loads(native.output[native.output.index("{\n") :])
    assert doc["status"] == doc_n["status"]
    assert doc["hosts"][h.name]["unreachable"] is True
    assert "host key" in doc["hosts"][h.name]["failure"].lower()
    assert not Path(f"{target}-2").exists()


@pytest.mark.slow
def test_a_failed_undo_is_rollback_incomplete_exit_4_as_native(project: Path) -> None:
    text = RUNBOOK.replace('rm -f -- {{ target | quote }}/app/started"', 'echo cannot; exit 3"')
    assert text != RUNBOOK
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    native = _fresh(project / "native")
    code_n, doc_n = _exec("-e", f"target={native}", "-e", "fail_at=verify")
    viaans = _fresh(project / "ansible")
    code_a, doc_a = _exec("-e", f"target={viaans}", "-e", "fail_at=verify", "--engine", "ansible")
    assert (code_n, code_a) == (4, 4)
    assert doc_a["status"] == doc_n["status"] == "rollback_failed"
    ha = doc_a["hosts"]["localhost"]
    assert ha["rollback"] == "failed"
    assert [p.split(":")[0:2] for p in ha["rollback_problems"]] == [["localhost", " step 'Start marker'"]]
    assert ("rollback", 3, "undo: Start marker", "shell", "failed") in _steps(doc_a)
    assert "ROLLBACK FAILED on localhost" in doc_a["message"]


@pytest.mark.slow
def test_deploy_lock_held_is_refused_exit_3_as_native(project: Path) -> None:
    import shutil
    import socket

    from runbook.execute.lock import lock_dir

    text = RUNBOOK.replace("max_fail_percentage: 0\n", "max_fail_percentage: 0\nlock: engine-option-test\n")
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    d = Path(lock_dir("engine-option-test", "localhost"))
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    try:
        (d / "details.json").write_text(
            f'{{"run_id": "other-run", "user": "ops", "pid": {os.getpid()}, '
            f'"control_host": "{socket.gethostname()}", "since": 9999999999}}'
        )
        native = _fresh(project / "native")
        code_n, doc_n = _exec("-e", f"target={native}")
        viaans = _fresh(project / "ansible")
        code_a, doc_a = _exec("-e", f"target={viaans}", "--engine", "ansible")
        assert (code_n, code_a) == (3, 3)
        assert doc_a["status"] == doc_n["status"] == "refused"
        assert "held by run other-run" in doc_a["hosts"]["localhost"]["failure"]
        assert "app" not in _tree(viaans) and d.is_dir()  # nothing changed; not ours: left alone
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
def test_two_hosts_per_host_records_as_native(project: Path) -> None:
    (project / "playbooks" / "small-deploy.yml").write_text(RUNBOOK.replace("  target: /tmp/never\n", ""))
    for engine in ("native", "ansible"):
        (project / engine).mkdir()
        a, b = _fresh(project / engine / "a"), _fresh(project / engine / "b")
        (project / f"inv-{engine}").write_text(
            f"alpha ansible_connection=local target={a}\nbeta ansible_connection=local target={b}\n"
        )
    res_n = CliRunner().invoke(cli, ["exec", "small-deploy", "-i", "inv-native", "--output", "json"])
    res_a = CliRunner().invoke(
        cli, ["exec", "small-deploy", "-i", "inv-ansible", "--output", "json", "--engine", "ansible"]
    )
    assert (res_n.exit_code, res_a.exit_code) == (0, 0), res_a.output
    doc_n = json.loads(res_n.output[res_n.output.index("{\n") :])
    doc_a = json.loads(res_a.output[res_a.output.index("{\n") :])
    assert sorted(doc_a["hosts"]) == ["alpha", "beta"]
    for h in ("alpha", "beta"):
        steps = [(s["phase"], s["name"], s["outcome"]) for s in doc_a["hosts"][h]["steps"]]
        assert steps == [(s["phase"], s["name"], s["outcome"]) for s in doc_n["hosts"][h]["steps"]]
    for host in ("a", "b"):
        assert _tree(project / "ansible" / host) == _tree(project / "native" / host)


@pytest.mark.slow
def test_a_secret_never_reaches_the_output_or_the_audit(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    text = RUNBOOK.replace(
        "always:\n", '  - name: Uses the token\n    shell: "echo token={{ token }}"\nalways:\n'
    ).replace('  fail_at: ""\n', '  fail_at: ""\n  token: none\n')
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    target = _fresh(project / "t")
    token = "hunter2-" + os.urandom(6).hex()
    res = CliRunner().invoke(
        cli, ["exec", "small-deploy", "-i", "inv", "--output", "json", "--engine", "ansible",
              "-e", f"target={target}", "-e", f"token={token}", "--secret", "token", "--audit-dir", "audit"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output[res.output.index("{\n") :])
    (used,) = [s for s in doc["hosts"]["localhost"]["steps"] if s["name"] == "Uses the token"]
    assert (
        used["outcome"] == "changed" and used["stdout"].startswith("token=") and token not in used["stdout"]
    )
    assert token not in res.output
    assert all(token not in p.read_text() for p in (project / "audit").glob("*.jsonl"))


def _descendants(pid: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.add(k)
            todo.append(k)
    return out


def _running(pid: int) -> bool:
    """Is the process there and not a zombie (an exited child nobody has reaped yet)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_sigterm_stops_ansible_playbook_exit_130(project: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    text = RUNBOOK.replace(
        "  - name: Health with retries\n",
        '  - name: Long step\n    shell: "sleep 120 && touch {{ target | quote }}/slept"\n  - name: Health with retries\n',
    )
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    target = _fresh(project / "t")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbook", "exec", "small-deploy", "-i", "inv", "-e", f"target={target}",
         "--engine", "ansible"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=project,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:  # bounded: the step starts, or the run ends
            seen.append(line)
            if "start localhost | Long step" in line:
                break
        assert any("Long step" in s for s in seen), "".join(seen)
        time.sleep(0.5)  # (not a timing assertion: lets the shell start)
        children = _descendants(proc.pid)
        assert children
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest
    assert not (target / "slept").exists()
    deadline = time.monotonic() + 30
    while (alive := {p for p in children if _running(p)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive, [
        Path(f"/proc/{p}/cmdline").read_bytes() for p in alive
    ]  # ansible-playbook, workers, commands


@pytest.mark.slow
def test_python_api_streams_the_events_in_native_order(project: Path) -> None:
    import runbook

    def kinds(engine: str, target: Path) -> list[tuple[str, str | None, str | None, str | None]]:
        seen: list[tuple[str, str | None, str | None, str | None]] = []
        out = runbook.run(
            "small-deploy", inventory=["inv"], vars={"target": str(target), "fail_at": "verify"},
            engine=engine, on_event=lambda e: seen.append((e.kind, e.phase, e.step, e.outcome)),
        )  # fmt: skip
        assert out.exit_code == 1 and out.status == "rolled_back"
        wanted = (
            "run.start",
            "phase.start",
            "step.start",
            "step.end",
            "rollback.start",
            "rollback.step",
            "rollback.end",
            "run.end",
        )
        return [k for k in seen if k[0] in wanted]

    native = kinds("native", _fresh(project / "native"))
    ansible = kinds("ansible", _fresh(project / "ansible"))
    assert ansible == native, "\n".join(map(str, ansible)) + "\n--- native\n" + "\n".join(map(str, native))


@pytest.mark.slow
def test_a_failed_batch_stops_the_next_as_native(project: Path) -> None:
    text = RUNBOOK.replace("  target: /tmp/never\n", "").replace(
        'shell: "test {{ fail_at | quote }} != verify"', 'shell: "test {{ inventory_hostname }} != alpha"'
    )
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    docs = {}
    for engine in ("native", "ansible"):
        (project / engine).mkdir()
        a, b = _fresh(project / engine / "a"), _fresh(project / engine / "b")
        (project / "inv").write_text(
            f"alpha ansible_connection=local target={a}\nbeta ansible_connection=local target={b}\n"
        )
        code, docs[engine] = _exec("--engine", engine)
        assert code == 1 and docs[engine]["status"] == "rolled_back"
        assert "app" not in _tree(a) and "app" not in _tree(b)  # alpha rolled back, beta's batch never ran
    alpha = [(s["phase"], s["name"], s["outcome"]) for s in docs["ansible"]["hosts"]["alpha"]["steps"]]
    assert alpha == [(s["phase"], s["name"], s["outcome"]) for s in docs["native"]["hosts"]["alpha"]["steps"]]
    beta = [s["phase"] for s in docs["ansible"]["hosts"]["beta"]["steps"]]
    assert beta == [
        "preflight",
        "preflight",
    ]  # (native also runs always: on beta; Ansible's batch never starts)
    assert (
        "not started" in docs["ansible"]["message"] and "max_fail_percentage 0%" in docs["ansible"]["message"]
    )


def test_each_task_line_is_its_step(project: Path) -> None:
    from runbook.session.ansible_engine import playbook_for, task_lines, task_map
    from runbook.session.run import load_checked

    rb = load_checked(project / "playbooks" / "small-deploy.yml")
    text = playbook_for(rb, dry_run=False)
    lines = task_lines(text, task_map(rb))
    rows = text.splitlines()
    for line in lines:  # the line Ansible reports as task_path is the task's name line
        assert rows[line - 1].strip().startswith("- name:"), (line, rows[line - 1])
    got = sorted((i.phase, i.name) for i in lines.values())
    assert ("rollback", "undo: Config") in got and ("always", "Record that the run ended") in got
    assert len([g for g in got if g[0] == "steps"]) == 6 and len([g for g in got if g[0] == "preflight"]) == 2


@pytest.mark.slow
def test_templated_step_names_as_native(project: Path) -> None:
    text = RUNBOOK.replace("  - name: Config\n", "  - name: Config {{ version }}\n")
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    docs = {}
    for engine in ("native", "ansible"):
        code, docs[engine] = _exec(
            "-e", f"target={_fresh(project / engine)}", "-e", "fail_at=verify", "--engine", engine
        )
        assert code == 1
    assert _steps(docs["ansible"]) == _steps(docs["native"])
    assert ("rollback", 1, "undo: Config 2.0", "copy", "rolled_back") in _steps(docs["ansible"])


@pytest.mark.slow
def test_loop_items_stream_as_native(project: Path) -> None:
    import runbook

    text = RUNBOOK.replace(
        "  - name: Health with retries\n",
        '  - name: Touch files\n    shell: "touch {{ target | quote }}/{{ item }}"\n    loop: [x, y]\n'
        "  - name: Health with retries\n",
    )
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    streams = {}
    for engine in ("native", "ansible"):
        seen: list[tuple[str, str | None, str | None, Any]] = []
        target = _fresh(project / engine)
        out = runbook.run(
            "small-deploy", inventory=["inv"], vars={"target": str(target)}, engine=engine,
            on_event=lambda e, seen=seen: seen.append((e.kind, e.step, e.outcome, dict(e.data).get("index")))
            if (e.step or "").startswith("Touch") else None,
        )  # fmt: skip
        assert out.exit_code == 0 and (target / "x").exists() and (target / "y").exists()
        streams[engine] = seen
    assert streams["ansible"] == streams["native"]
    assert [k[1] for k in streams["ansible"] if k[0] == "step.item"] == [
        "Touch files (item=x)",
        "Touch files (item=y)",
    ]
