"""deploy-4gb end to end through the CLI, on real dockerd, PostgreSQL and Redis.

A baseline (release v1: image runbook-demo:v1, migrations 001-002, some rows) is deployed once; each
failure test then tries to deploy v2 with one failure injected through `-e` and asserts that the run
exits 1, the rollback is recorded, and the host is exactly at the baseline again: v1 healthy and
serving, the same compose file, .env, image IDs, schema, rows and applied migrations. The time from
the failure to the previous release being healthy again is measured (from the audit trail and by an
independent poller) and reported at the end of the session (see conftest.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.deploy.conftest import ROLLBACK_TIMES
from tests.deploy.helpers import (
    BROKEN,
    MIGRATIONS,
    V2_MIGRATIONS,
    Deploy,
    Poller,
    ensure_baseline,
    health,
    inject,
    make_deploy,
    migrations_dir,
)

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres]


@pytest.fixture(scope="module")
def deploy(dockerd, postgres_server, redis_server, tmp_path_factory) -> Deploy:
    d = make_deploy(tmp_path_factory.mktemp("deploy4gb"), postgres_server, redis_server)
    yield d
    d.down()


@pytest.fixture
def baseline(deploy: Deploy) -> dict[str, Any]:
    return ensure_baseline(deploy)


# ------------------------------------------------------------------------------------ the matrix


def test_pull_failure_rolls_back(deploy: Deploy, baseline: dict) -> None:
    doc = inject(deploy, baseline, "pull: image not in any reachable registry",
                 app_image="127.0.0.1:9/runbook-demo:v2",
                 migrations_dir=migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS))  # fmt: skip
    assert "Pull images" in doc["message"]


def test_broken_migration_rolls_back_by_restoring_the_backup(deploy: Deploy, baseline: dict) -> None:
    # 003 has no down file: undoing it needs the backup taken at the start of the run.
    files = {"001_create_conversations.sql": MIGRATIONS / "001_create_conversations.sql",
             "002_create_messages.sql": MIGRATIONS / "002_create_messages.sql",
             "003_conversation_titles.sql": MIGRATIONS / "003_conversation_titles.sql",
             "004_broken.sql": BROKEN}  # fmt: skip
    doc = inject(deploy, baseline, "migrate: broken 004 after 003 (no down file)",
                 migrations_dir=migrations_dir(deploy.root, "m-broken", files))  # fmt: skip
    assert "004_broken.sql:3: syntax error" in doc["message"]
    undo = [s for s in doc["hosts"][deploy.host]["steps"] if s["phase"] == "rollback"]
    assert any("restored backup" in s["msg"] for s in undo), undo


def test_container_that_exits_fails_up_and_rolls_back(deploy: Deploy, baseline: dict) -> None:
    doc = inject(deploy, baseline, "up: container exits at start", app_image="runbook-demo:broken",
                 migrations_dir=migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS))  # fmt: skip
    assert "Deploy the stack" in doc["message"]


def test_health_check_failing_three_times_rolls_back(deploy: Deploy, baseline: dict) -> None:
    doc = inject(deploy, baseline, "health: /health unhealthy x4 (backoff 1+2+4 s)", app_image="runbook-demo:unhealthy",
                 migrations_dir=migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS))  # fmt: skip
    step = next(s for s in doc["hosts"][deploy.host]["steps"] if s["name"] == "Health check")
    assert step["outcome"] == "failed" and step["attempts"] == 4


def test_crashed_container_rolls_back(deploy: Deploy, baseline: dict) -> None:
    inject(deploy, baseline, "crash: container dies after becoming healthy", app_image="runbook-demo:crash",
           migrations_dir=migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS))  # fmt: skip


def test_oom_killed_container_rolls_back(deploy: Deploy, baseline: dict) -> None:
    doc = inject(deploy, baseline, "oom: container exceeds its 64 MB limit", app_image="runbook-demo:oom",
                 mem_api_mb=64, migrations_dir=migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS))  # fmt: skip
    assert "OOM" in doc["message"] or "Deploy the stack" in doc["message"] or "Health" in doc["message"]


# ------------------------------------------------------------------------------------ no change / success


def test_preflight_failure_changes_nothing(deploy: Deploy, baseline: dict) -> None:
    backups = sorted(p.name for p in (deploy.app_dir.parent / "backups").glob("*"))
    history = (deploy.app_dir / "deploy-history.log").read_text()
    rc, doc = deploy.cli("exec", overrides={"app_version": "v2", "mem_api_mb": 3500})
    assert rc == 3 and doc["status"] == "preflight_failed", doc["message"]
    budget = next(s for s in doc["hosts"][deploy.host]["steps"] if s["module"] == "compose.budget")
    assert "memory budget exceeded" in budget["msg"] and "api" in budget["stdout"]
    assert not any(s["phase"] == "steps" for s in doc["hosts"][deploy.host]["steps"])
    assert deploy.state() == baseline
    assert sorted(p.name for p in (deploy.app_dir.parent / "backups").glob("*")) == backups
    assert (deploy.app_dir / "deploy-history.log").read_text() == history


def test_plan_shows_the_compose_diff_and_changes_nothing(deploy: Deploy, baseline: dict) -> None:
    rc, doc = deploy.cli("plan", overrides={"app_version": "v2",
                                            "migrations_dir": migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS)})  # fmt: skip
    assert rc == 0, doc["message"]
    planned = [p for s in doc["hosts"][deploy.host]["steps"] for p in s.get("planned") or []]
    diff = "\n".join(p.get("diff", "") for p in planned)
    assert "-    image: runbook-demo:v1" in diff and "+    image: runbook-demo:v2" in diff
    assert any("up -d --wait" in p["summary"] for p in planned)
    assert deploy.state() == baseline
    for secret in deploy.secrets:
        assert secret not in json.dumps(doc)


def test_v1_to_v2_succeeds_and_runbook_rollback_returns_to_v1(deploy: Deploy, baseline: dict) -> None:
    rc, doc = deploy.cli("exec", overrides={"app_version": "v2",
                                            "migrations_dir": migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS)})  # fmt: skip
    assert rc == 0, doc["message"]
    assert health(deploy.port)["version"] == "v2"
    assert [v for v, _ in deploy.sql("SELECT version, 1 FROM schema_migrations ORDER BY 1")] == [
        "001",
        "002",
        "003",
    ]
    assert deploy.sql("SELECT title FROM conversations ORDER BY id") == [
        ("How big is a 4 GB host?",),
        ("Roll it back!",),
    ]
    with Poller(deploy.port) as poller:
        start = time.time()
        rc, back = deploy.cli("rollback", "--run", doc["run_id"])
    assert rc == 0, back.get("message")
    assert deploy.state() == baseline
    healthy = poller.healthy_again("v1", start)
    ROLLBACK_TIMES.append({"case": "runbook rollback of a successful v2 deploy", "failed_step": "-",
                           "rollback_s": round(back["duration"], 2),
                           "healthy_after_s": round((healthy or start) - start, 2)})  # fmt: skip
