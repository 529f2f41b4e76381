"""`runbook compile` prints an Ansible playbook; run by plain ansible-playbook it leaves the same end
state as `runbook exec`, and an injected failure is rolled back the same way."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runbook.cli.main import cli

RUNBOOK = """\
name: small-deploy
hosts: all
serial: [1, 2]
max_fail_percentage: 0
vars:
  target: /tmp/never
  version: "2.0"
  fail_at: ""
preflight:
  - name: Enough disk
    check.disk: {path: /tmp, min_free_mb: 1}
  - name: The target's parent exists
    shell: "test -d {{ target | dirname | quote }}"
steps:
  - name: App directory
    file: {path: "{{ target }}/app", state: directory, mode: "0750"}
  - name: Config
    copy: {content: "version={{ version }}\\n", dest: "{{ target }}/app/app.conf", mode: "0640"}
  - name: Existing file is replaced
    copy: {content: "new\\n", dest: "{{ target }}/keep.txt"}
  - name: Start marker
    shell: "echo started > {{ target | quote }}/app/started"
    undo:
      shell: "rm -f -- {{ target | quote }}/app/started"
  - name: Health with retries
    shell: "test -f {{ target | quote }}/app/started"
    retries: 2
    delay: 1
    register: health
    changed_when: false
  - name: Injected failure
    shell: "test {{ fail_at | quote }} != verify"
    changed_when: false
always:
  - name: Record that the run ended
    shell: "echo done >> {{ target | quote }}/always.log"
"""


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        mode = stat.S_IMODE(p.stat().st_mode)
        out[str(p.relative_to(root))] = ("<dir>" if p.is_dir() else p.read_text(), mode)
    return out


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "small-deploy.yml").write_text(RUNBOOK)
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")
    return tmp_path


def _fresh(root: Path) -> Path:
    root.mkdir()
    (root / "keep.txt").write_text("old\n")
    (root / "keep.txt").chmod(0o600)
    return root


def test_compiled_playbook_has_the_runbook_structure(project: Path) -> None:
    res = CliRunner().invoke(cli, ["compile", "small-deploy"])
    assert res.exit_code == 0, res.output
    pre, main = yaml.safe_load(res.output)
    assert pre["any_errors_fatal"] is True and all(t["runbook.core.step"]["read_only"] for t in pre["tasks"])
    assert pre["tasks"][1]["runbook.core.step"]["args"]["changes"] is False  # a probe, as in runbook exec
    assert [t["runbook.core.step"]["kind"] for t in pre["tasks"]] == ["check.disk", "shell"]
    assert main["serial"] == [1, 2] and main["max_fail_percentage"] == 0
    (block,) = main["tasks"]
    kinds = [t["runbook.core.step"]["kind"] for t in block["block"]]
    assert kinds == ["file", "copy", "copy", "shell", "shell", "shell"]
    health = block["block"][4]
    assert (health["retries"], health["delay"], health["until"]) == (2, 1, "health is succeeded")
    rescue = block["rescue"]
    # reverse order: the shell's own undo step, then the kinds' undo from the registered snapshots
    # first the run's status (always: sees it as run.status): rollback_failed until every undo ran
    assert rescue[0]["ansible.builtin.set_fact"] == {"runbook_status": "rollback_failed"}
    assert [t["name"] for t in rescue[1:5]] == [
        "undo: Start marker",
        "undo: Existing file is replaced",
        "undo: Config",
        "undo: App directory",
    ]
    assert rescue[2]["runbook.core.step"]["undo"] is True
    assert rescue[2]["runbook.core.step"]["snapshot"] == "{{ runbook_step_3.runbook_snapshot }}"
    assert rescue[-2]["ansible.builtin.set_fact"] == {"runbook_status": "rolled_back"}
    assert "ansible.builtin.fail" in rescue[-1]
    assert [t["name"] for t in block["always"]] == ["Record that the run ended"]


@pytest.mark.slow
def test_same_end_state_as_exec_and_failure_rolled_back(project: Path, ansible) -> None:
    pb = project / "compiled.yml"
    res = CliRunner().invoke(cli, ["compile", "small-deploy", "-o", str(pb)])
    assert res.exit_code == 0, res.output
    run = ansible()

    native = _fresh(project / "native")
    res = CliRunner().invoke(cli, ["exec", "small-deploy", "-i", "inv", "-e", f"target={native}"])
    assert res.exit_code == 0, res.output
    compiled = _fresh(project / "compiled")
    run.playbook(pb, str(project / "inv"), "-e", f"target={compiled}")
    assert _tree(compiled) == _tree(native)
    assert _tree(native)["app/app.conf"] == ("version=2.0\n", 0o640)

    # an injected failure: every change undone (the always step still ran), host failed
    native_f = _fresh(project / "native-f")
    res = CliRunner().invoke(
        cli, ["exec", "small-deploy", "-i", "inv", "-e", f"target={native_f}", "-e", "fail_at=verify"]
    )
    assert res.exit_code == 1, res.output
    compiled_f = _fresh(project / "compiled-f")
    res = run.playbook(
        pb, str(project / "inv"), "-e", f"target={compiled_f}", "-e", "fail_at=verify", check=False
    )
    assert res.returncode == 2, res.stdout
    assert "rolled back" in res.stdout
    assert _tree(compiled_f) == _tree(native_f)
    assert _tree(compiled_f) == {
        "always.log": ("done\n", _tree(compiled_f)["always.log"][1]),
        "keep.txt": ("old\n", 0o600),
    }


@pytest.mark.slow
def test_preflight_failure_stops_before_any_change(project: Path, ansible) -> None:
    pb = project / "compiled.yml"
    CliRunner().invoke(cli, ["compile", "small-deploy", "-o", str(pb)])
    target = project / "missing-parent" / "t"
    res = ansible().playbook(pb, str(project / "inv"), "-e", f"target={target}", check=False)
    assert res.returncode == 2, res.stdout
    assert "small-deploy: steps" not in res.stdout  # the steps play never started
    assert not target.parent.exists()


def test_unknown_runbook_is_a_usage_error(project: Path) -> None:
    res = CliRunner().invoke(cli, ["compile", "nope"])
    assert res.exit_code == 2
    assert textwrap.dedent("no runbook named 'nope'") in res.output


@pytest.mark.slow
def test_outside_the_window_nothing_changes(project: Path, ansible) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    start, end = (now + timedelta(hours=2)).strftime("%H:%M"), (now + timedelta(hours=3)).strftime("%H:%M")
    text = RUNBOOK.replace(
        "max_fail_percentage: 0\n", f"max_fail_percentage: 0\nwindow: {{start: '{start}', end: '{end}'}}\n"
    )
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    pb = project / "compiled.yml"
    res = CliRunner().invoke(cli, ["compile", "small-deploy", "-o", str(pb)])
    assert res.exit_code == 0, res.output
    pre = yaml.safe_load(pb.read_text())[0]
    assert pre["tasks"][0]["runbook.core.window"] == {"start": start, "end": end, "tz": "UTC"}
    target = _fresh(project / "t")
    res = ansible().playbook(pb, str(project / "inv"), "-e", f"target={target}", check=False)
    assert res.returncode == 2, res.stdout
    assert "outside the maintenance window" in res.stdout
    assert _tree(target) == {"keep.txt": ("old\n", 0o600)}


@pytest.mark.slow
def test_compiled_over_sshd_with_the_audit_callback(project: Path, ansible, ssh_lab) -> None:
    """Over real sshd (host keys checked against the lab's known_hosts), audited by the callback: the
    same end state as `runbook exec` locally, an injected failure rolled back, the trail verifies."""
    import json

    from runbook.audit.keys import generate_key

    pb = project / "compiled.yml"
    assert CliRunner().invoke(cli, ["compile", "small-deploy", "-o", str(pb)]).exit_code == 0
    h = ssh_lab.hosts[0]
    inv = project / "ssh-inv"
    inv.write_text(
        f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user=root "
        f"ansible_ssh_private_key_file={ssh_lab.key} ansible_python_interpreter=python3 "
        f"ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile={ssh_lab.known_hosts} "
        "-o StrictHostKeyChecking=yes'\n"
    )
    key = project / "audit_key"
    generate_key(key, "ops@ansible")
    audit = project / "audit"
    run = ansible(
        ANSIBLE_CALLBACKS_ENABLED="runbook.core.audit",
        RUNBOOK_AUDIT_DIR=str(audit),
        RUNBOOK_AUDIT_KEY=str(key),
    )

    native = _fresh(project / "native")
    res = CliRunner().invoke(cli, ["exec", "small-deploy", "-i", "inv", "-e", f"target={native}"])
    assert res.exit_code == 0, res.output
    remote = _fresh(project / "remote")  # the lab's sshd hosts share this machine's filesystem
    run.playbook(pb, str(inv), "-e", f"target={remote}")
    assert _tree(remote) == _tree(native)

    remote_f = _fresh(project / "remote-f")
    res = run.playbook(pb, str(inv), "-e", f"target={remote_f}", "-e", "fail_at=verify", check=False)
    assert res.returncode == 2, res.stdout
    assert set(_tree(remote_f)) == {"always.log", "keep.txt"} and _tree(remote_f)["keep.txt"] == (
        "old\n",
        0o600,
    )

    res = CliRunner().invoke(
        cli, ["audit", "verify", str(audit), "--allowed-signers", f"{key}.pub", "--json"]
    )
    assert res.exit_code == 0, res.output
    runs = json.loads(res.output)["runs"]
    assert [r["outcome"] for r in runs] == ["success", "failed"]
    undo = [
        json.loads(line)
        for line in sorted(audit.glob("*.jsonl"))[1].read_text().splitlines()
        if '"undo: ' in line and '"step.end"' in line
    ]
    assert {r["step"] for r in undo} == {
        "undo: Start marker", "undo: Existing file is replaced", "undo: Config", "undo: App directory"
    }  # fmt: skip
    assert all(r["host"] == h.name and r["outcome"] in ("changed", "ok") for r in undo)


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_runbook_compiles(path: Path) -> None:
    res = CliRunner().invoke(cli, ["compile", str(path)])
    assert res.exit_code == 0, res.output
    plays = yaml.safe_load(res.output)
    steps = plays[-1]["tasks"][0]["block"]
    known = ("runbook.core.step", "runbook.core.lock", "block")
    assert steps and all(any(k in t for k in known) for t in steps)
    assert sum("runbook.core.step" in t or "block" in t for t in steps) == len(steps) - bool(
        yaml.safe_load(path.read_text()).get("lock")
    )


@pytest.mark.slow
def test_compiled_deploy_4gb_passes_ansible_syntax_check(tmp_path: Path, ansible) -> None:
    pb = tmp_path / "deploy-4gb.yml"
    root = Path(__file__).resolve().parents[2]
    res = CliRunner().invoke(cli, ["compile", str(root / "playbooks" / "deploy-4gb.yml"), "-o", str(pb)])
    assert res.exit_code == 0, res.output
    out = ansible().playbook(pb, "localhost,", "--syntax-check")
    assert f"playbook: {pb}" in out.stdout


@pytest.mark.slow
def test_deploy_lock_held_by_a_live_run_refuses_and_is_released_after(project: Path, ansible) -> None:
    import os
    import shutil
    import socket

    from runbook.execute.lock import lock_dir

    text = RUNBOOK.replace("max_fail_percentage: 0\n", "max_fail_percentage: 0\nlock: small-deploy-test\n")
    (project / "playbooks" / "small-deploy.yml").write_text(text)
    pb = project / "compiled.yml"
    assert CliRunner().invoke(cli, ["compile", "small-deploy", "-o", str(pb)]).exit_code == 0
    (block,) = yaml.safe_load(pb.read_text())[-1]["tasks"]
    assert block["block"][0]["runbook.core.lock"] == {"name": "small-deploy-test"}
    assert block["always"][-1]["runbook.core.lock"] == {"name": "small-deploy-test", "state": "released"}

    d = Path(lock_dir("small-deploy-test", "localhost"))
    shutil.rmtree(d, ignore_errors=True)
    run = ansible()
    try:
        # a live holder (this test's process): the run is refused before any change
        d.mkdir(parents=True)
        (d / "details.json").write_text(
            f'{{"run_id": "other-run", "user": "ops", "pid": {os.getpid()}, '
            f'"control_host": "{socket.gethostname()}", "since": 9999999999}}'
        )
        target = _fresh(project / "held")
        res = run.playbook(pb, str(project / "inv"), "-e", f"target={target}", check=False)
        assert res.returncode == 2, res.stdout
        assert "deploy lock 'small-deploy-test' is held by run other-run" in res.stdout
        assert set(_tree(target)) == {"keep.txt", "always.log"}  # only the always step ran
        assert d.is_dir()  # not ours: left alone

        # held by a run whose process is gone: stale, broken, the run goes on
        import subprocess

        gone = subprocess.Popen(["true"])
        gone.wait()
        (d / "details.json").write_text(
            f'{{"run_id": "dead-run", "pid": {gone.pid}, "control_host": "{socket.gethostname()}", "since": 9999999999}}'
        )
        target = _fresh(project / "stale")
        res = run.playbook(pb, str(project / "inv"), "-e", f"target={target}", "-v")
        assert "broke a stale lock held by run dead-run" in res.stdout
        assert not d.exists()

        # free: the run takes it, deploys, and releases it
        target = _fresh(project / "free")
        run.playbook(pb, str(project / "inv"), "-e", f"target={target}")
        assert _tree(target)["app/app.conf"] == ("version=2.0\n", 0o640)
        assert not d.exists()
    finally:
        shutil.rmtree(d, ignore_errors=True)
