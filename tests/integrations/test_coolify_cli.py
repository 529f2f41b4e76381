"""coolify.deploy / coolify.status / notify.webhook through the whole engine (CLI, events, audit): the
token never reaches the output or the audit trail, a dry-run sends nothing, failures end with the documented exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.conftest import REPO
from tests.standins.coolify import CoolifyStandIn
from tests.standins.webhook import WebhookStandIn

APP = "ok0s0cgw8ck0w8kgs8kk4kk8"
PLAYBOOK = """\
name: coolify-only
hosts: all
preflight:
  - name: Coolify answers
    coolify.status: {url: "{{ coolify_url }}", token: "{{ coolify_token }}", uuid: "{{ app_uuid }}"}
steps:
  - name: Deploy through Coolify
    coolify.deploy:
      url: "{{ coolify_url }}"
      token: "{{ coolify_token }}"
      uuid: "{{ app_uuid }}"
      timeout: "{{ coolify_timeout }}"
      poll: 0.02
rollback: auto
always:
  - notify.webhook: {url: "{{ hook_url }}", text: "coolify-only {{ run.status }}"}
"""


def run_cli(tmp: Path, command: str, evars: dict[str, Any]) -> tuple[int, dict, str]:
    (tmp / "playbooks").mkdir(exist_ok=True)
    (tmp / "playbooks" / "coolify-only.yml").write_text(PLAYBOOK)
    argv = [sys.executable, "-m", "runbook.cli.main", command, "coolify-only", "-i", "localhost,"]
    argv += ["-e", json.dumps(evars), "--output", "json", "--audit-dir", str(tmp / "audit")]
    if command == "exec":
        argv.append("--yes")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        pytest.fail(f"no JSON (rc {res.returncode}):\n{res.stdout}\n{res.stderr}")
    audit = "".join(p.read_text() for p in (tmp / "audit").glob("*.jsonl"))
    return res.returncode, doc, res.stdout + res.stderr + audit


@pytest.fixture
def env(tmp_path: Path):
    with CoolifyStandIn() as c, WebhookStandIn() as hook:
        c.add_app(APP, "web", commit="1111111")
        c.add_finished(APP, "1111111")
        c.apps[APP].commit = "2222222"
        evars = {"coolify_url": c.url, "coolify_token": c.token, "app_uuid": APP, "coolify_timeout": 3}
        evars["hook_url"] = hook.url + "/hook"
        yield tmp_path, c, hook, evars


def deploys(c: CoolifyStandIn) -> list[dict]:
    return [r for r in c.requests if r["path"] == "/api/v1/deploy"]


def test_exec_deploys_and_the_token_never_shows(env) -> None:
    tmp, c, hook, evars = env
    rc, doc, everything = run_cli(tmp, "exec", evars)
    assert rc == 0, everything
    steps = {s["name"]: s for s in doc["hosts"]["localhost"]["steps"]}
    assert steps["Deploy through Coolify"]["outcome"] == "changed"
    assert "finished" in steps["Deploy through Coolify"]["msg"]
    assert len(deploys(c)) == 1
    assert hook.wait_for(1)[0]["json"] == {"text": "coolify-only success"}
    assert c.token not in everything
    assert c.token.split("|", 1)[1] not in everything


def test_plan_probes_coolify_but_deploys_and_notifies_nothing(env) -> None:
    tmp, c, hook, evars = env
    rc, _doc, everything = run_cli(tmp, "plan", evars)
    assert rc == 0, everything
    assert deploys(c) == [] and hook.received == []
    assert any(r["path"] == f"/api/v1/applications/{APP}" for r in c.requests)  # the preflight probe ran
    assert c.token not in everything


def test_failed_deploy_exits_1_and_undo_finds_nothing_changed(env) -> None:
    tmp, c, _hook, evars = env
    c.behaviour.outcome = "failed"
    rc, doc, everything = run_cli(tmp, "exec", evars)
    assert rc == 1, everything
    host = doc["hosts"]["localhost"]
    step = next(s for s in host["steps"] if s["name"] == "Deploy through Coolify")
    assert step["outcome"] == "failed" and step["msg"].startswith("deploy failed: failed (deployment ")
    assert host["rollback"] == "ok"
    assert c.token not in everything


def test_coolify_down_fails_preflight_with_exit_3(env) -> None:
    tmp, c, _hook, evars = env
    c.stop()
    rc, _doc, everything = run_cli(tmp, "exec", evars)
    assert rc == 3, everything
    assert "Coolify did not answer (connection refused)" in everything
