"""compose-deploy (seed 001's deploy.sh and rollback strategy) end to end through the CLI, on the
session's real dockerd, PostgreSQL and Redis, with the webhook stand-in for Slack.

Baseline: release v1 (${REGISTRY}/{web,api}:v1, migration 001, two users). Each failure test deploys
v2 with one failure injected through -e and asserts the host is exactly at the baseline afterwards:
v1 serving, the same containers' images, .env, compose file, schema, applied migrations and rows.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.seeds.helpers import REPO, Seed, assert_rolled_back, copy_dir, get, new_database
from tests.standins.webhook import WebhookStandIn

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres]

MIGRATIONS = REPO / "migrations" / "compose-deploy"
V1 = {"001_create_users.sql": MIGRATIONS / "001_create_users.sql",
      "001_create_users.down.sql": MIGRATIONS / "001_create_users.down.sql"}  # fmt: skip
V2 = {f.name: f for f in MIGRATIONS.glob("*.sql")}


@pytest.fixture(scope="module")
def seed(seed_images, postgres_server, redis_server, webhook, tmp_path_factory) -> Seed:
    root = tmp_path_factory.mktemp("compose-deploy")
    dsn = new_database(postgres_server.dsn, "cdeploy")
    from tests.fixtures.redis import free_port

    secret_key = "sk-" + os.urandom(8).hex()
    s = Seed(
        runbook="compose-deploy",
        root=root,
        dsn=dsn,
        secrets=[postgres_server.password, redis_server.password, secret_key],
        vars={
            "app_name": "rbseed001" + os.urandom(2).hex(),
            "app_dir": str(root / "app"),
            "web_port": free_port(),
            "api_port": free_port(),
            "db_port": postgres_server.port,
            "db_name": dsn.rsplit("/", 1)[1],
            "db_user": postgres_server.user,
            "db_password": postgres_server.password,
            "redis_port": redis_server.port,
            "redis_password": redis_server.password,
            "secret_key": secret_key,
            "container_health_interval": "1s",
            "wait_timeout": 30,
            "mem_web": "64M",
            "mem_api": "64M",
            "health_delay": 1,
            "backup_dir": str(root / "backups"),
            "offsite_dir": str(root / "offsite"),
            "migrations_dir": copy_dir(root, "m-v1", V1),
            "notify_url": webhook.url + "/services/T000/B000/seed001secret",
        },
    )
    yield s
    s.down(s.vars["app_name"], Path(s.vars["app_dir"]) / "docker-compose.prod.yml")


def state(s: Seed) -> dict[str, Any]:
    """Everything a rollback must put back."""
    app = Path(s.vars["app_dir"])
    return {
        "api": get(f"http://127.0.0.1:{s.vars['api_port']}/health")[1],
        "web": get(f"http://127.0.0.1:{s.vars['web_port']}/health")[1],
        "images": s.containers(s.vars["app_name"]),
        "env": (app / ".env").read_text(),
        "env_mode": oct((app / ".env").stat().st_mode & 0o777),
        "compose": (app / "docker-compose.prod.yml").read_text(),
        "schema": s.schema(),
        "migrations": s.sql("SELECT version, checksum FROM schema_migrations ORDER BY 1"),
        "rows": s.sql("SELECT * FROM users ORDER BY id"),
    }


@pytest.fixture
def baseline(seed: Seed) -> dict[str, Any]:
    _, doc, _ = get(f"http://127.0.0.1:{seed.vars['api_port']}/health")
    if not doc or doc.get("version") != "v1":
        rc, out = seed.cli("exec")
        assert rc == 0, out["message"]
        if not seed.sql("SELECT 1 FROM users LIMIT 1"):
            seed.sql("INSERT INTO users (email) VALUES ('alice@example.com'), ('bob@example.com')")
    st = state(seed)
    assert st["api"]["version"] == "v1" and st["web"]["role"] == "web" and len(st["rows"]) == 2
    assert set(st["images"]) == {"web", "api"}
    return st


def test_v2_deploys_then_manual_rollback_brings_v1_back(
    seed: Seed, baseline: dict, webhook: WebhookStandIn
) -> None:
    before = len(webhook.received)
    rc, doc = seed.cli("exec", overrides={"version": "v2", "migrations_dir": copy_dir(seed.root, "m-v2", V2)})
    assert rc == 0, doc["message"]
    assert get(f"http://127.0.0.1:{seed.vars['api_port']}/health")[1]["version"] == "v2"
    assert seed.sql("SELECT email, display_name FROM users ORDER BY id") == [
        ("alice@example.com", "alice"),
        ("bob@example.com", "bob"),
    ]
    # the backup and its off-host copy are the same bytes, and the approval is on record
    backup = Path(seed.vars["backup_dir"]) / f"db_{doc['run_id']}.dump"
    offsite = Path(seed.vars["offsite_dir"]) / backup.name
    assert hashlib.sha256(backup.read_bytes()).digest() == hashlib.sha256(offsite.read_bytes()).digest()
    assert seed.step(doc, "Approve the production deploy")["outcome"] == "ok"
    texts = [r["json"]["text"] for r in webhook.wait_for(before + 2)[before:]]
    assert texts[0].startswith(f"Deploying {seed.vars['app_name']} v2") and "success" in texts[-1]

    # seed 001 "Manual Rollback": back to the previous version, verified healthy, schema reverted
    rc, back = seed.cli("rollback", "--run", doc["run_id"])
    assert rc == 0, [(s["name"], s["msg"]) for s in seed.steps(back) if s["outcome"] == "failed"]
    assert state(seed) == baseline
    seed.assert_no_secret_leaked()


def test_unhealthy_release_rolls_back_images_and_schema(seed: Seed, baseline: dict) -> None:
    rc, doc = seed.cli(
        "exec", overrides={"version": "unhealthy", "migrations_dir": copy_dir(seed.root, "m-v2", V2)}
    )
    assert_rolled_back(seed, rc, doc, "Health check")
    assert seed.step(doc, "Run database migrations")["outcome"] == "changed"  # 002 was applied, then undone
    assert seed.step(doc, "Health check")["attempts"] == 4
    assert state(seed) == baseline
    seed.assert_no_secret_leaked()


def test_pull_failure_rolls_back(seed: Seed, baseline: dict) -> None:
    rc, doc = seed.cli("exec", overrides={"version": "v9"})
    assert_rolled_back(seed, rc, doc, "Pull images")
    assert "localhost/myorg/api:v9" in seed.step(doc, "Pull images")["msg"]
    assert state(seed) == baseline


def test_plan_shows_the_new_image_tag_and_changes_nothing(seed: Seed, baseline: dict) -> None:
    rc, doc = seed.cli("plan", overrides={"version": "v2", "migrations_dir": copy_dir(seed.root, "m-v2", V2)})
    assert rc == 0, doc["message"]
    planned = [p for s in seed.steps(doc) for p in s.get("planned") or []]
    diff = "\n".join(p.get("diff", "") for p in planned)
    assert "-VERSION=v1" in diff and "+VERSION=v2" in diff
    migrate = seed.step(doc, "Run database migrations")["msg"]  # made of the backup the plan did not take
    assert "002_user_display_names" in migrate or migrate.startswith("dry-run: known at run time"), migrate
    assert state(seed) == baseline
    seed.assert_no_secret_leaked()


def test_missing_secret_fails_preflight_and_changes_nothing(seed: Seed, baseline: dict) -> None:
    rc, doc = seed.cli("exec", overrides={"version": "v2", "secret_key": ""})
    assert rc == 3 and doc["status"] == "preflight_failed", doc["message"]
    assert not seed.steps(doc, "steps")
    assert state(seed) == baseline
