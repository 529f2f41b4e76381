"""coolify-deploy end to end through the CLI: the Coolify stand-in, and a real dockerd for the SSH/compose
fallback (seed 002: Coolify first; if it does not answer, fails or hangs, compose over SSH).

Needs the engine's ``fallback:`` step keyword; skipped until the runbook model knows it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.dockerd import dockerd  # noqa: F401 - session fixture
from tests.fixtures.health import version_of
from tests.fixtures.redis import free_port
from tests.integrations.conftest import REPO
from tests.standins.coolify import CoolifyStandIn
from tests.standins.webhook import WebhookStandIn

pytestmark = [pytest.mark.slow]
APP = "ok0s0cgw8ck0w8kgs8kk4kk8"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"status": "healthy", "version": self.server.version}).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Site:
    root: Path
    port: int
    project: str
    coolify: CoolifyStandIn
    webhook: WebhookStandIn

    def cli(self, command: str, **extra: Any) -> tuple[int, dict, str]:
        evars = {
            "coolify_url": extra.pop("coolify_url") if "coolify_url" in extra else self.coolify.url,
            "coolify_token": self.coolify.token,
            "coolify_timeout": 2,
            "coolify_poll": 0.05,
            "notify_url": f"{self.webhook.url}/services/T/B/siteSecret",
            **extra,
        }
        argv = [
            sys.executable,
            "-m",
            "runbook.cli.main",
            command,
            "coolify-deploy",
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
            "--yes",
        ]
        env = {**os.environ, "RUNBOOK_PATH": str(REPO / "playbooks"), "PYTHONPATH": str(REPO)}
        res = subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=600)
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            pytest.fail(f"no JSON from runbook {command} (rc {res.returncode}):\n{res.stdout}\n{res.stderr}")
        audit = "".join(p.read_text() for p in (self.root / "audit").glob("*.jsonl"))
        assert self.coolify.token not in res.stdout + res.stderr + audit
        return res.returncode, doc, res.stdout + res.stderr


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    port, project = free_port(), f"coolify-{secrets.token_hex(3)}"
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    group = yaml.safe_load((REPO / "inventories/local/group_vars/all.yml").read_text())
    group.update(app_version="v2", health_delay=1, health_retries=3)
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump(group))
    (inv / "hosts").write_text(
        f"[app]\napp1 ansible_connection=local app_port={port} app_dir={tmp_path / 'app'} "
        f"app_name={project} coolify_app_uuid={APP}\n"
    )
    with CoolifyStandIn() as c, WebhookStandIn() as hook:
        c.add_app(APP, "web", commit="1111111")
        c.add_finished(APP, "1111111")
        c.apps[APP].commit = "2222222"
        try:
            yield Site(tmp_path, port, project, c, hook)
        finally:
            subprocess.run(
                ["docker", "compose", "-p", project, "down", "--timeout", "1"], capture_output=True
            )


def test_coolify_deploys_and_no_fallback_runs(site: Site) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", site.port), _Health)
    server.version = "v2"  # type: ignore[attr-defined]  # the app Coolify runs
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        rc, doc, text = site.cli("exec")
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 0, text
    names = [s["name"] for s in doc["hosts"]["app1"]["steps"]]
    assert not any(n.startswith("Fallback:") for n in names)
    assert [r for r in site.coolify.requests if r["path"] == "/api/v1/deploy"]
    [note] = site.webhook.wait_for(1)
    assert note["json"]["text"].startswith("coolify-deploy of runbook-demo:v2 on app1: success")


@pytest.mark.docker
@pytest.mark.parametrize("trouble", ["hang", "down", "failed"])
def test_fallback_deploys_over_ssh(site: Site, dockerd: Any, trouble: str) -> None:  # noqa: F811
    extra: dict[str, Any] = {}
    if trouble == "down":
        extra["coolify_url"] = site.coolify.url  # the address it had: nothing answers there now
        site.coolify.stop()
    else:
        site.coolify.behaviour.outcome = trouble
    rc, doc, text = site.cli("exec", **extra)
    assert rc == 0, text
    assert version_of(site.port) == "v2"
    steps = {s["name"]: s for s in doc["hosts"]["app1"]["steps"]}
    assert steps["Fallback: docker compose up over SSH"]["outcome"] in ("changed", "ok")
    if trouble == "hang":
        hung = [d for d in site.coolify.deployments.values() if d.commit == "2222222"]
        assert hung and all(d.cancelled for d in hung)  # no race with a late Coolify deploy


@pytest.mark.docker
def test_fallback_failure_rolls_back(site: Site, dockerd: Any) -> None:  # noqa: F811
    site.coolify.behaviour.outcome = "failed"
    rc, doc, text = site.cli("exec", app_image="runbook-demo:broken")
    assert rc == 1, text
    assert doc["hosts"]["app1"]["failed"]
