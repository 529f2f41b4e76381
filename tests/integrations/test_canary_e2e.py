"""canary-rollout end to end through the CLI: four host aliases on this machine (ansible_connection=local),
a real dockerd (the demo app's releases), a real Prometheus for the metric gates, and the webhook
stand-in for the notification."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.actions import Http
from tests.fixtures.dockerd import dockerd  # noqa: F401 - session fixture
from tests.fixtures.health import version_of
from tests.fixtures.redis import free_port
from tests.integrations.conftest import REPO
from tests.integrations.prometheus_server import PrometheusServer
from tests.standins.webhook import WebhookStandIn

pytestmark = [pytest.mark.slow, pytest.mark.docker]

HOSTS = ("h1", "h2", "h3", "h4")
SECRET = "T0AAA/B0BBB/canarySecretPath"
PASS = {"error_rate_query": "vector(0.002)", "latency_p95_query": "vector(1.5)"}


@dataclass
class Fleet:
    root: Path
    ports: dict[str, int]
    projects: dict[str, str]
    prometheus: PrometheusServer
    webhook: WebhookStandIn

    def versions(self) -> dict[str, str | None]:
        return {h: version_of(p) for h, p in self.ports.items()}

    def cli(self, command: str, **extra: Any) -> tuple[int, dict, str]:
        evars = {
            "prometheus_url": self.prometheus.url,
            "notify_url": f"{self.webhook.url}/services/{SECRET}",
            "gate_hold": "0.3s",
            "gate_every": 0.1,
            **PASS,
            **extra,
        }
        argv = [
            sys.executable,
            "-m",
            "runbook.cli.main",
            command,
            "canary-rollout",
            "-i",
            str(self.root / "inv"),
        ]
        argv += [
            "-e",
            json.dumps(evars),
            "--output",
            "json",
            "--audit-dir",
            str(self.root / "audit"),
            "-f",
            "1",
        ]
        if command == "exec":
            argv.append("--yes")
        env = {**os.environ, "RUNBOOK_PATH": str(REPO / "playbooks"), "PYTHONPATH": str(REPO)}
        res = subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=600)
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            pytest.fail(f"no JSON from runbook {command} (rc {res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res.returncode, doc, res.stdout + res.stderr


@pytest.fixture(scope="module")
def fleet(dockerd, prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    root = tmp_path_factory.mktemp("canary")
    suffix = secrets.token_hex(3)
    ports = {h: free_port() for h in HOSTS}
    projects = {h: f"canary-{suffix}-{h}" for h in HOSTS}
    inv = root / "inv"
    (inv / "group_vars").mkdir(parents=True)
    group = yaml.safe_load((REPO / "inventories/local/group_vars/all.yml").read_text())
    group.update(app_version="v1", health_delay=1, notify_url="")
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump(group))
    lines = ["[app]"] + [
        f"{h} ansible_connection=local app_port={ports[h]} app_dir={root / h} app_name={projects[h]}"
        for h in HOSTS
    ]
    (inv / "hosts").write_text("\n".join(lines) + "\n")
    with WebhookStandIn() as hook:
        f = Fleet(root, ports, projects, prometheus, hook)
        rc, _doc, text = f.cli("exec", app_version="v1")  # the baseline release everywhere
        assert rc == 0, text
        assert f.versions() == dict.fromkeys(HOSTS, "v1")
        try:
            yield f
        finally:
            for h in HOSTS:
                subprocess.run(
                    ["docker", "compose", "-p", projects[h], "down", "--timeout", "1"],
                    capture_output=True,
                    timeout=120,
                )


def _other(version: str | None) -> str:
    return "v1" if version == "v2" else "v2"


def test_rollout_goes_through_every_batch(fleet: Fleet) -> None:
    before = fleet.versions()["h1"]
    target = _other(before)
    fleet.webhook.received.clear()
    rc, doc, text = fleet.cli("exec", app_version=target)
    assert rc == 0, text
    assert doc["status"] == "success"
    assert fleet.versions() == dict.fromkeys(HOSTS, target)
    for h in HOSTS:
        steps = {s["name"]: s for s in doc["hosts"][h]["steps"] if s["phase"] == "steps"}
        gate = steps["Gate: error rate"]
        assert gate["outcome"] == "ok" and "held for 0.3s" in gate["msg"]
    [note] = fleet.webhook.wait_for(1)
    assert note["json"] == {"text": f"canary-rollout of runbook-demo:{target}: success (run {doc['run_id']})"}
    assert SECRET not in text


def test_a_failed_gate_stops_at_the_canary_and_rolls_it_back(fleet: Fleet) -> None:
    before = fleet.versions()
    target = _other(before["h1"])
    fleet.webhook.received.clear()
    rc, doc, text = fleet.cli("exec", app_version=target, error_rate_query="vector(0.5)")
    assert rc == 1, text
    h1 = doc["hosts"]["h1"]
    assert h1["failed"] and h1["rollback"] == "ok"
    gate = next(s for s in h1["steps"] if s["name"] == "Gate: error rate")
    assert gate["outcome"] == "failed" and gate["msg"] == "vector(0.5): 0.5 > max 0.01"
    assert fleet.versions() == before  # the canary is back on the previous release; nobody else moved
    for h in HOSTS[1:]:
        assert not [s for s in doc["hosts"][h]["steps"] if s["phase"] == "steps"]
    [note] = fleet.webhook.wait_for(1)
    assert f"canary-rollout of runbook-demo:{target}: " in note["json"]["text"]
    assert ": success" not in note["json"]["text"]
    assert SECRET not in text


def test_plan_changes_nothing_and_sends_nothing(fleet: Fleet) -> None:
    before = fleet.versions()
    fleet.webhook.received.clear()
    rc, doc, text = fleet.cli("plan", app_version=_other(before["h1"]))
    assert rc == 0, text
    assert doc["dry_run"] is True
    assert fleet.versions() == before
    assert fleet.webhook.received == []
    if "display" in {f.name for f in dataclasses.fields(Http)}:  # the engine shows the masked form
        assert SECRET not in text
