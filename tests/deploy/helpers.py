"""Shared helpers for the deploy-4gb end-to-end tests: run the CLI, poll /health, capture the state a
rollback must restore, check the rollback and measure how long it took."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from tests.deploy.conftest import REPO, ROLLBACK_TIMES
from tests.fixtures.files import copy_dir
from tests.fixtures.health import health
from tests.fixtures.redis import free_port

MIGRATIONS = REPO / "migrations"
BROKEN = "-- fails half-way: the first statement must be rolled back with it\nCREATE TABLE gadgets (id int);\nSELEC 1;\n"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Poller:
    """Polls /health every 50 ms and records (time, version-or-None)."""

    def __init__(self, port: int):
        self.port = port
        self.samples: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            doc = health(self.port, timeout=1)
            version = doc.get("version") if doc and doc.get("status") == "healthy" else None
            self.samples.append((time.time(), version))
            self._stop.wait(0.05)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def healthy_again(self, version: str, after: float) -> float | None:
        """When ``version`` was first seen healthy at or after ``after`` following an outage (or
        ``after`` itself if it never went away)."""
        down = False
        for t, v in self.samples:
            if t < after:
                down = v != version
                continue
            if v == version:
                return after if not down else t
            down = True
        return None


@dataclass
class Deploy:
    root: Path
    dsn: str
    vars: dict[str, Any]
    secrets: list[str]
    inventory: Path = REPO / "inventories/local"
    host: str = "localhost"
    cli_args: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.vars["app_port"])

    @property
    def app_dir(self) -> Path:
        return Path(self.vars["app_dir"])

    def cli(self, command: str, *extra: str, overrides: dict[str, Any] | None = None) -> tuple[int, dict]:
        vars_file = self.root / "vars.json"
        vars_file.write_text(json.dumps(self.vars))
        argv = [
            sys.executable,
            "-m",
            "runbook.cli.main",
            command,
            "deploy-4gb",
            "-i",
            str(self.inventory),
        ]
        argv += ["-e", f"@{vars_file}"]
        if overrides:
            argv += ["-e", json.dumps(overrides)]
        argv += [*extra, *self.cli_args, "--output", "json", "--audit-dir", str(self.root / "audit")]
        if command != "plan":
            argv.append("--yes")
        env = {**os.environ, "RUNBOOK_PATH": str(REPO / "playbooks"), "PYTHONPATH": str(REPO)}
        res = subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=600)
        self.outputs += [res.stdout, res.stderr]
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            raise AssertionError(f"no JSON document (rc {res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res.returncode, doc

    def down(self) -> None:
        compose = self.app_dir / "docker-compose-4gb.yml"
        subprocess.run(["docker", "compose", "-p", self.vars["app_name"], "-f", str(compose), "down", "-t", "1"],
                       capture_output=True)  # fmt: skip

    def audit(self, doc: dict) -> list[dict]:
        path = Path(doc["audit"])
        path = path if path.is_absolute() else self.root / path
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def sql(self, text: str) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(text)
            return cur.fetchall() if cur.description else []

    def state(self) -> dict[str, Any]:
        """Everything a rollback must restore."""
        api = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.vars['app_name']}",
             "--filter", "label=com.docker.compose.service=api"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        image = subprocess.run(
            ["docker", "inspect", "-f", "{{.Image}}", *api], capture_output=True, text=True
        ).stdout.split()
        return {
            "health": health(self.port),
            "api_images": image,
            "compose": (self.app_dir / "docker-compose-4gb.yml").read_text(),
            "env": (self.app_dir / "app.env").read_text(),
            "env_mode": oct((self.app_dir / "app.env").stat().st_mode & 0o777),
            "schema": self.sql(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' ORDER BY 1, 2"
            ),
            "indexes": self.sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"),
            "migrations": self.sql("SELECT version, checksum FROM schema_migrations ORDER BY 1"),
            "rows": self.sql(
                "SELECT c.id, c.user_id, m.role, m.content FROM conversations c "
                "JOIN messages m ON m.conversation_id = c.id ORDER BY m.id"
            ),
        }


migrations_dir = copy_dir  # a directory of ordered .sql files for postgres.migrate


V1_MIGRATIONS = {f.name: f for f in sorted(MIGRATIONS.glob("00[12]_*.sql"))}
V2_MIGRATIONS = {f.name: f for f in sorted(MIGRATIONS.glob("*.sql"))}


def assert_rolled_back(deploy: Deploy, baseline: dict, rc: int, doc: dict, poller: Poller, case: str) -> None:
    host = doc["hosts"][deploy.host]
    assert rc == 1, f"{case}: exit {rc}: {doc['message']}"
    assert doc["status"] == "rolled_back" and host["rollback"] == "ok", doc["message"]
    undone = [s for s in host["steps"] if s["phase"] == "rollback"]
    assert undone and all(s["outcome"] in ("rolled_back", "skipped") for s in undone), undone
    assert deploy.state() == baseline
    records = deploy.audit(doc)
    failed = next(r for r in records if r["event"] == "step.end" and r.get("outcome") == "failed")
    events = [r["event"] for r in records]
    assert "rollback.start" in events and "rollback.end" in events
    t_fail = _ts(failed["ts"])
    t_rolled = _ts(next(r for r in records if r["event"] == "rollback.end")["ts"])
    t_healthy = poller.healthy_again("v1", t_fail)
    assert t_healthy is not None, "v1 never came back (poller)"
    ROLLBACK_TIMES.append(
        {
            "case": case,
            "failed_step": failed["data"].get("module", "") + " (" + failed.get("step", "") + ")",
            "rollback_s": round(t_rolled - t_fail, 2),
            "healthy_after_s": round(max(0.0, t_healthy - t_fail), 2),
        }
    )
    for secret in deploy.secrets:
        assert all(secret not in out for out in deploy.outputs), f"a secret leaked in {case}"
        assert secret not in json.dumps(records)


def inject(deploy: Deploy, baseline: dict, case: str, **overrides: Any) -> dict:
    with Poller(deploy.port) as poller:
        rc, doc = deploy.cli("exec", overrides={"app_version": "v2", **overrides})
        time.sleep(0.3)
    assert_rolled_back(deploy, baseline, rc, doc, poller, case)
    return doc


def make_deploy(root: Path, postgres_server: Any, redis_server: Any, **kw: Any) -> Deploy:
    """A fresh database, app dir, port and compose project for one module's deploys."""
    db = "deploy_" + os.urandom(3).hex()
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    dsn = postgres_server.dsn.rsplit("/", 1)[0] + "/" + db
    openai_key = "sk-test-" + os.urandom(8).hex()
    return Deploy(
        root=root,
        dsn=dsn,
        secrets=[postgres_server.password, redis_server.password, openai_key],
        vars={
            "app_name": "rbe2e" + os.urandom(2).hex(),
            "app_dir": str(root / "app"),
            "backup_dir": str(root / "backups"),
            "app_port": free_port(),
            "app_version": "v1",
            "db_host": "127.0.0.1",
            "db_port": postgres_server.port,
            "db_name": db,
            "db_user": postgres_server.user,
            "db_password": postgres_server.password,
            "redis_port": redis_server.port,
            "redis_password": redis_server.password,
            "openai_api_key": openai_key,
            "health_delay": 1,
            "settle_seconds": 4,
            "container_health_interval": "1s",
            "wait_timeout": 30,
            "migrations_dir": migrations_dir(root, "m-v1", V1_MIGRATIONS),
        },
        **kw,
    )


def ensure_baseline(deploy: Deploy) -> dict[str, Any]:
    """v1 live with migrations 001-002 and two conversations; (re)deployed if a test left it elsewhere."""
    h = health(deploy.port)
    if not h or h.get("version") != "v1":
        rc, doc = deploy.cli("exec")
        assert rc == 0, doc["message"]
        if not deploy.sql("SELECT 1 FROM conversations LIMIT 1"):
            deploy.sql(
                "INSERT INTO conversations (user_id) VALUES ('alice'), ('bob');"
                "INSERT INTO messages (conversation_id, role, content) VALUES "
                "(1, 'user', 'How big is a 4 GB host?'), (2, 'user', 'Roll it back!')"
            )
    state = deploy.state()
    assert state["health"]["version"] == "v1" and state["migrations"] and state["rows"]
    return state
