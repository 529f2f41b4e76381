"""blue-green (seed 003) end to end through the CLI: two Compose projects on the session's real dockerd,
demo/lb.py as the load balancer, real PostgreSQL (backup) and Redis (Go/No-Go), the webhook stand-in.

Baseline: v1 runs in both colours and green takes the traffic. Each test deploys v2 to blue. While it
runs, a poller asks the load balancer for /health every 50 ms: a blue-green switch (and a switch back)
must never drop a request. Afterwards the test asserts the exact state: what the load balancer serves
and through which colour, the upstream file, both projects' containers and files.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.seeds.conftest import LoadBalancer
from tests.seeds.helpers import Seed, assert_rolled_back, get, new_database
from tests.standins.webhook import WebhookStandIn

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres]


@pytest.fixture(scope="module")
def seed(seed_images, postgres_server, redis_server, webhook, tmp_path_factory) -> Seed:
    from tests.fixtures.redis import free_port

    root = tmp_path_factory.mktemp("blue-green")
    dsn = new_database(postgres_server.dsn, "bluegreen")
    app_dir = root / "app"
    lb = LoadBalancer(app_dir / "upstream.conf", root / "lb.log")
    s = Seed(
        runbook="blue-green",
        root=root,
        dsn=dsn,
        secrets=[postgres_server.password, redis_server.password],
        cli_args=["--force-window"],  # the seed's window is 01:00-03:00 UTC
        vars={
            "app_name": "rbseed003" + os.urandom(2).hex(),
            "app_dir": str(app_dir),
            "blue_port": free_port(),
            "green_port": free_port(),
            "lb_port": lb.port,
            "db_port": postgres_server.port,
            "db_name": dsn.rsplit("/", 1)[1],
            "db_user": postgres_server.user,
            "db_password": postgres_server.password,
            "redis_port": redis_server.port,
            "redis_password": redis_server.password,
            "container_health_interval": "1s",
            "wait_timeout": 30,
            "mem_app": "64m",
            "monitor_soak": 1,
            "monitor_samples": [1, 2, 3],
            "backup_dir": str(root / "backups"),
            "notify_url": webhook.url + "/services/T000/B000/seed003secret",
        },
    )
    s.lb = lb  # type: ignore[attr-defined]
    yield s
    lb.stop()
    for color in ("blue", "green"):
        s.down(f"{s.vars['app_name']}-{color}", app_dir / color / "docker-compose.yml")


def state(s: Seed) -> dict[str, Any]:
    app = Path(s.vars["app_dir"])
    status, doc, headers = get(s.lb.url + "/health")  # type: ignore[attr-defined]
    return {
        "live": (status, doc, headers.get("X-Upstream")),
        "upstream": (app / "upstream.conf").read_text(),
        "blue": s.containers(s.vars["app_name"] + "-blue"),
        "green": s.containers(s.vars["app_name"] + "-green"),
        "blue_compose": (app / "blue" / "docker-compose.yml").read_text(),
        "green_compose": (app / "green" / "docker-compose.yml").read_text(),
    }


@pytest.fixture
def baseline(seed: Seed) -> dict[str, Any]:
    """v1 in both colours, green live (blue is the idle colour the tests deploy to)."""
    st = state(seed) if (Path(seed.vars["app_dir"]) / "green" / "docker-compose.yml").exists() else None
    if not st or st["live"][2] != f"127.0.0.1:{seed.vars['green_port']}" or not st["blue"]:
        for color in ("blue", "green"):
            rc, doc = seed.cli("exec", overrides={"color": color, "app_version": "v1"})
            assert rc == 0, doc["message"]
        st = state(seed)
    assert st["live"][:2] == (200, {"status": "healthy", "version": "v1", "role": "api"})
    assert "# color: green" in st["upstream"] and st["blue"] and st["green"]
    return st


class Watch:
    """Polls the load balancer's /health every 50 ms while a run goes on; keeps what answered."""

    def __init__(self, url: str):
        self.url, self.samples = url, []  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, doc, headers = get(self.url)
            self.samples.append((status, (doc or {}).get("version"), headers.get("X-Upstream")))
            self._stop.wait(0.05)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def versions(self) -> list[str | None]:
        """The versions seen, in order, repeats collapsed."""
        out: list[str | None] = []
        for _, v, _ in self.samples:
            if not out or out[-1] != v:
                out.append(v)
        return out


def test_v2_goes_live_on_blue_without_a_dropped_request_then_rolls_back(
    seed: Seed, baseline: dict, webhook: WebhookStandIn
) -> None:
    before = len(webhook.received)
    with Watch(seed.lb.url + "/health") as watch:  # type: ignore[attr-defined]
        rc, doc = seed.cli("exec", overrides={"color": "blue", "app_version": "v2"})
    assert rc == 0, doc["message"]
    assert all(status == 200 for status, _, _ in watch.samples), "a request was dropped during the switch"
    assert watch.versions() == ["v1", "v2"]
    after = state(seed)
    assert after["live"][1]["version"] == "v2" and after["live"][2] == f"127.0.0.1:{seed.vars['blue_port']}"
    assert after["green"] == baseline["green"]  # the old colour stays up: the rollback target
    signoffs = seed.step(doc, "Sign-off: {{ item }}")
    assert signoffs["outcome"] == "ok" and signoffs["msg"].count("approved by") == 6, signoffs
    texts = [r["json"]["text"] for r in webhook.wait_for(before + 2)[before:]]
    assert "deployment to blue starting" in texts[0] and "success" in texts[-1]

    # seed 003's "auto-rollback": traffic goes back to green, blue returns to its previous release
    with Watch(seed.lb.url + "/health") as watch:  # type: ignore[attr-defined]
        rc, back = seed.cli("rollback", "--run", doc["run_id"])
    assert rc == 0, [(s["name"], s["msg"]) for s in seed.steps(back) if s["outcome"] == "failed"]
    assert all(status == 200 for status, _, _ in watch.samples) and watch.versions() == ["v2", "v1"]
    assert state(seed) == baseline
    seed.assert_no_secret_leaked()


def test_unhealthy_release_never_takes_traffic(seed: Seed, baseline: dict) -> None:
    with Watch(seed.lb.url + "/health") as watch:  # type: ignore[attr-defined]
        rc, doc = seed.cli(
            "exec", overrides={"color": "blue", "app_version": "v2", "app_image": "runbook-demo:unhealthy"}
        )
    assert_rolled_back(seed, rc, doc, "Post-deployment verification: blue serves v2")
    assert not any(s["name"].startswith("Switch traffic") for s in seed.steps(doc))
    assert watch.versions() == ["v1"] and all(status == 200 for status, _, _ in watch.samples)
    assert state(seed) == baseline


def test_failure_after_the_switch_switches_back(seed: Seed, baseline: dict) -> None:
    # the post-switch monitoring gate fails (no answer is ever within 0 ms): traffic must go back
    with Watch(seed.lb.url + "/health") as watch:  # type: ignore[attr-defined]
        rc, doc = seed.cli("exec", overrides={"color": "blue", "app_version": "v2", "monitor_max_ms": 0})
    assert_rolled_back(seed, rc, doc, "Production monitoring: sample {{ item }}")
    assert seed.step(doc, "Switch traffic to blue")["outcome"] == "changed"
    undo = seed.step(doc, "undo: Switch traffic to blue")
    assert undo["outcome"] == "rolled_back", undo
    verify = seed.step(doc, "Verify the rollback: the previous release serves live traffic again")
    assert verify["outcome"] == "ok", verify
    assert watch.versions() == ["v1", "v2", "v1"] and all(status == 200 for status, _, _ in watch.samples)
    assert state(seed) == baseline


def test_deploying_to_the_live_colour_is_refused(seed: Seed, baseline: dict) -> None:
    rc, doc = seed.cli("exec", overrides={"color": "green", "app_version": "v2"})
    assert rc == 3 and doc["status"] == "preflight_failed", doc["message"]
    refused = seed.step(doc, "green is idle (no live traffic on it)")
    assert refused["outcome"] == "failed" and "traffic is on green: deploy to blue instead" in refused["msg"]
    assert state(seed) == baseline


def test_plan_shows_the_switch_and_changes_nothing(seed: Seed, baseline: dict) -> None:
    rc, doc = seed.cli("plan", overrides={"color": "blue", "app_version": "v2"})
    assert rc == 0, doc["message"]
    diff = "\n".join(p.get("diff", "") for s in seed.steps(doc) for p in s.get("planned") or [])
    assert f"-    server 127.0.0.1:{seed.vars['green_port']};" in diff
    assert f"+    server 127.0.0.1:{seed.vars['blue_port']};" in diff
    assert "+    image: runbook-demo:v2" in diff
    assert state(seed) == baseline
