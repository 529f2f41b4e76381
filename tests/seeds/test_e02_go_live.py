"""e02-go-live (seed 004) end to end through the CLI: real PostgreSQL (documents, the tagging-schema
migration, the pre-migration snapshot and its restore), the E02 API and importer stand-ins as Compose
services on the session's real dockerd, the webhook stand-in for every channel, and the signed audit
trail (the sign-offs must be in it).

Baseline: the API release before E02 (e01-v0.9.0) and the importer are running, the database holds
DOCS documents and no tagging schema. A go-live that fails after the migration and the API deploy
must bring all of it back: the e01 API serving, imports running, the schema and every row (and the
id sequence) as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.seeds.helpers import REPO, Seed, assert_rolled_back, copy_dir, get, new_database
from tests.standins.webhook import WebhookStandIn

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres]

DOCS = 1200
KINDS = ("invoice", "receipt", "contract", "report", "memo")
BEFORE = str(REPO / "tests" / "seeds" / "playbooks" / "e02-before-go-live.yml")


@pytest.fixture(scope="module")
def seed(seed_images, postgres_server, webhook, tmp_path_factory) -> Seed:
    from tests.fixtures.redis import free_port

    root = tmp_path_factory.mktemp("e02")
    dsn = new_database(postgres_server.dsn, "e02")
    token = "adm-" + os.urandom(8).hex()
    s = Seed(
        runbook="e02-go-live",
        root=root,
        dsn=dsn,
        secrets=[postgres_server.password, token],
        audit=True,
        cli_args=["--force-window"],  # the seed's go-live is 07:30-09:00 UTC
        vars={
            "app_name": "rbseed004" + os.urandom(2).hex(),
            "app_dir": str(root / "app"),
            "api_port": free_port(),
            "importer_port": free_port(),
            "db_port": postgres_server.port,
            "db_name": dsn.rsplit("/", 1)[1],
            "db_user": postgres_server.user,
            "db_password": postgres_server.password,
            "admin_token": token,
            "rollbar_token": "rb-" + os.urandom(4).hex(),
            "expected_documents": DOCS,
            "container_health_interval": "1s",
            "wait_timeout": 30,
            "mem_api": "64m",
            "backup_dir": str(root / "backups"),
            **{
                f"{ch}_webhook": f"{webhook.url}/{ch}/T000/secret"
                for ch in ("ops", "domain_leads", "slack", "statuspage")
            },
        },
    )
    s.sql(
        "CREATE TABLE documents (id bigserial PRIMARY KEY, title text NOT NULL, kind text NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    s.sql(
        "INSERT INTO documents (title, kind) SELECT 'doc-' || i || '.pdf', (ARRAY"
        + repr(list(KINDS)).replace('"', "'")
        + f")[1 + i % {len(KINDS)}] FROM generate_series(1, {DOCS}) i"
    )
    rc, doc = s.cli("exec", runbook=BEFORE, overrides={"repo_dir": str(REPO)})
    assert rc == 0, doc["message"]
    yield s
    s.down(s.vars["app_name"], root / "app" / "docker-compose.yml")


def api(s: Seed, path: str = "/health") -> dict | None:
    return get(f"http://127.0.0.1:{s.vars['api_port']}/cgi-bin/app{path}")[1]


def importer(s: Seed) -> dict | None:
    return get(f"http://127.0.0.1:{s.vars['importer_port']}/cgi-bin/app/health")[1]


def state(s: Seed) -> dict[str, Any]:
    app = Path(s.vars["app_dir"])
    return {
        "api": api(s),
        "importer": importer(s),
        "images": s.containers(s.vars["app_name"]),
        "compose": (app / "docker-compose.yml").read_text(),
        "env": (app / "api.env").read_text(),
        "schema": s.schema(),
        "triggers": s.sql(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2"
        ),
        "rows": s.sql("SELECT id, title, kind, created_at FROM documents ORDER BY id"),
        "sequence": s.sql("SELECT last_value, is_called FROM documents_id_seq"),
    }


@pytest.fixture(scope="module")
def baseline(seed: Seed) -> dict[str, Any]:
    st = state(seed)
    assert st["api"] == {"status": "healthy", "version": "e01-v0.9.0", "role": "api", "tags_enabled": False}
    assert st["importer"]["imports"] == "running" and len(st["rows"]) == DOCS
    assert not [t for t in st["schema"] if t[0] in ("document_tags", "tag_audit")]
    return st


def texts(hook: WebhookStandIn, since: int) -> dict[str, list[str]]:
    """What each channel received since ``since``: channel -> texts."""
    out: dict[str, list[str]] = {}
    for r in hook.received[since:]:
        out.setdefault(r["path"].split("/")[1], []).append(r["json"]["text"])
    return out


def test_go_live_then_rollback_to_the_pre_migration_snapshot(
    seed: Seed, baseline: dict, webhook: WebhookStandIn
) -> None:
    before = len(webhook.received)
    rc, doc = seed.cli("exec")
    assert rc == 0, doc["message"]
    assert api(seed) == {"status": "healthy", "version": "e02-v1.0.0", "role": "api", "tags_enabled": True}
    assert importer(seed)["imports"] == "running"
    assert seed.sql("SELECT count(*), count(DISTINCT category_id) FROM document_tags") == [(DOCS, len(KINDS))]
    assert seed.sql("SELECT count(*) FROM tag_audit") == [(DOCS,)]
    assert seed.sql("SELECT count(*) FROM documents") == [(DOCS,)]  # the smoke test left nothing behind
    smoke = seed.step(doc, "Step 5: import -> classify -> tag -> audit (rolled-back transaction)")
    assert "tagged: domain 1, category 1, status 1" in smoke["stderr"]
    webhook.wait_for(before + 6)
    got = texts(webhook, before)
    assert got["ops"][0].startswith("E02 deployment starting 08:00Z")
    assert got["ops"][-1].startswith("E02 is live")
    assert got["statuspage"] == ["deployment in progress", "operational: E02 is live"]
    assert set(got) == {"ops", "domain_leads", "slack", "statuspage"}

    # the change board's record: every sign-off is in the signed audit trail, which verifies
    trail = Path(seed.root / doc["audit"]).read_text()
    assert not [secret for secret in seed.secrets if secret in trail]
    records = [json.loads(line) for line in trail.splitlines()]
    approvals = [r for r in records if r["event"] == "approval"]
    assert len(approvals) == 3 and all(r["outcome"] == "approved" for r in approvals)
    assert "QC Lead (QC-101)" in json.dumps(approvals)
    res = subprocess.run(
        [sys.executable, "-m", "runbook.cli.main", "audit", "verify", "--allow-unsigned", doc["audit"]],
        cwd=seed.root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr

    # seed 004's rollback, later: back to the pre-migration state and the previous API
    rc, back = seed.cli("rollback", "--run", doc["run_id"])
    assert rc == 0, [(s["name"], s["msg"]) for s in seed.steps(back) if s["outcome"] == "failed"]
    assert state(seed) == baseline
    seed.assert_no_secret_leaked()


def test_failure_after_migration_and_api_deploy_restores_everything(
    seed: Seed, baseline: dict, webhook: WebhookStandIn
) -> None:
    before = len(webhook.received)
    rc, doc = seed.cli("exec", overrides={"expected_tag_endpoints": 8})
    assert_rolled_back(seed, rc, doc, "Step 3: enable the tag endpoints")
    undo = {s["name"]: s for s in seed.steps(doc, "rollback")}
    assert "restored backup" in undo["undo: Migrate to the tagging schema"]["msg"]
    msg = undo["undo: Step 2: deploy the API (runbook-e02:e02-v1.0.0)"]["msg"]
    assert "live again" in msg and "healthy" in msg
    assert undo["undo: Freeze document imports for the migration"]["outcome"] == "rolled_back"
    assert state(seed) == baseline
    webhook.wait_for(before + 6)
    got = texts(webhook, before)
    assert got["ops"][-1].startswith("E02 rollback – investigating issue")
    assert got["statuspage"][-1] == "E02 deployment rolled_back"
    seed.assert_no_secret_leaked()


def test_broken_migration_rolls_back(seed: Seed, baseline: dict) -> None:
    broken = (REPO / "migrations/e02-go-live/001_e02_tagging_schema.sql").read_text()
    broken = broken.replace(
        "CREATE INDEX ix_tag_audit_document", "CREATE INDEX ix_tag_audit_document ON nowhere (x);\n--"
    )
    rc, doc = seed.cli(
        "exec",
        overrides={"migrations_dir": copy_dir(seed.root, "m-broken", {"001_e02_tagging_schema.sql": broken})},
    )
    assert_rolled_back(seed, rc, doc, "Migrate to the tagging schema")
    assert 'relation "nowhere" does not exist' in seed.step(doc, "Migrate to the tagging schema")["msg"]
    assert state(seed) == baseline


def test_plan_changes_nothing(seed: Seed, baseline: dict) -> None:
    rc, doc = seed.cli("plan")
    assert rc == 0, doc["message"]
    planned = [p for s in seed.steps(doc) for p in s.get("planned") or []]
    diff = "\n".join(p.get("diff", "") for p in planned)
    assert "-    image: runbook-e02:e01-v0.9.0" in diff and "+    image: runbook-e02:e02-v1.0.0" in diff
    # its undo reads the backup the plan did not take (registered by the step before): the plan says
    # it is known at run time instead of stopping (issue 13 item 2)
    migrate = seed.step(doc, "Migrate to the tagging schema")["msg"]
    assert "would apply 001_e02_tagging_schema" in migrate or migrate.startswith(
        "dry-run: known at run time"
    ), migrate
    assert state(seed) == baseline
    seed.assert_no_secret_leaked()


def test_document_count_mismatch_stops_before_any_change(seed: Seed, baseline: dict) -> None:
    rc, doc = seed.cli("exec", overrides={"expected_documents": DOCS + 1})
    assert rc == 3 and doc["status"] == "preflight_failed", doc["message"]
    count = seed.step(doc, f"Step 1: database connectivity, and every document is there ({DOCS + 1})")
    assert f"expected {DOCS + 1}" in count["msg"]
    assert state(seed) == baseline
