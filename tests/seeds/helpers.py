"""Run a seed runbook through the CLI (a subprocess, as an operator would) against the session's real
services, and look at what it left behind: HTTP answers, database rows, containers, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.fixtures.files import copy_dir  # noqa: F401 - re-exported for the seed tests

REPO = Path(__file__).resolve().parents[2]
HOST = "localhost"


def new_database(admin_dsn: str, prefix: str) -> str:
    """A fresh database on the session's PostgreSQL; its DSN."""
    name = prefix + "_" + os.urandom(3).hex()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    """(status, JSON body or None, headers); status 0 when nothing answers."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            body, status, hdrs = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as exc:
        body, status, hdrs = exc.read(), exc.code, dict(exc.headers)
    except OSError:
        return 0, None, {}
    try:
        return status, json.loads(body), hdrs
    except ValueError:
        return status, None, hdrs


@dataclass
class Seed:
    """One seed runbook, its settings (``vars``, passed with -e @file) and a scratch directory."""

    runbook: str
    root: Path
    dsn: str
    vars: dict[str, Any]
    secrets: list[str]
    audit: bool = False
    cli_args: list[str] = field(default_factory=list)  # added to exec/plan (e.g. --force-window)
    outputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.inventory = self.root / "hosts.ini"
        self.inventory.write_text(f"[app]\n{HOST} ansible_connection=local\n")

    def cli(
        self, command: str, *extra: str, overrides: dict[str, Any] | None = None, runbook: str | None = None
    ) -> tuple[int, dict]:
        vars_file = self.root / "vars.json"
        vars_file.write_text(json.dumps(self.vars))
        argv = [sys.executable, "-m", "runbook.cli.main", command, runbook or self.runbook]
        if command != "rollback":
            argv += ["-i", str(self.inventory)]
        argv += ["-e", f"@{vars_file}"]  # rollback too: secrets are not kept in the saved state
        if overrides:
            argv += ["-e", json.dumps(overrides)]
        argv += [*extra, *(self.cli_args if command != "rollback" else []), "--output", "json"]
        if command != "plan":
            argv += ["--yes"]
        if self.audit:
            argv += ["--audit-dir", str(self.root / "audit")]
        env = {**os.environ, "RUNBOOK_PATH": str(REPO / "playbooks"), "PYTHONPATH": str(REPO)}
        env["RUNBOOK_AUDIT"] = "1" if self.audit else "0"
        res = subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=600)
        self.outputs += [res.stdout, res.stderr]
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            raise AssertionError(f"no JSON document (rc {res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res.returncode, doc

    def steps(self, doc: dict, phase: str | None = None) -> list[dict]:
        return [s for s in doc["hosts"][HOST]["steps"] if phase is None or s["phase"] == phase]

    def step(self, doc: dict, name: str) -> dict:
        return next(s for s in self.steps(doc) if named(s["name"], name))

    def sql(self, text: str) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(text)
            return cur.fetchall() if cur.description else []

    def schema(self) -> list[tuple]:
        return self.sql(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ) + self.sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")

    def containers(self, project: str) -> dict[str, str]:
        """service -> image ID of the project's running containers."""
        ids = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        if not ids:
            return {}
        out = subprocess.run(
            ["docker", "inspect", "-f", '{{index .Config.Labels "com.docker.compose.service"}} {{.Image}}', *ids],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return dict(line.split() for line in out.splitlines() if line.strip())

    def down(self, project: str, compose_file: Path) -> None:
        if compose_file.exists():
            subprocess.run(["docker", "compose", "-p", project, "-f", str(compose_file), "down", "-t", "1"],
                           capture_output=True, timeout=120)  # fmt: skip

    def assert_no_secret_leaked(self) -> None:
        for secret in self.secrets:
            assert all(secret not in out for out in self.outputs), "a secret leaked into the CLI's output"


def named(shown: str, written: str) -> bool:
    """Is the step shown as ``shown`` the one written ``written``? A loop step's name is rendered per
    item (``Sign-off: {{ item }}`` is shown as ``Sign-off: alice, bob``): its text before the template."""
    if "{{" not in written:
        return shown == written
    return shown.startswith(written.split("{{", 1)[0])


def assert_rolled_back(seed: Seed, rc: int, doc: dict, failed_step: str) -> None:
    """Exit 1, the named step failed, a rollback ran and every undo succeeded."""
    assert rc == 1, f"exit {rc}: {doc.get('message')}"
    assert doc["status"] == "rolled_back", doc.get("message")
    assert doc["hosts"][HOST]["rollback"] == "ok", doc.get("message")
    failed = [s["name"] for s in seed.steps(doc, "steps") if s["outcome"] == "failed"]
    assert len(failed) == 1 and named(failed[0], failed_step), (failed, doc.get("message"))
    undone = seed.steps(doc, "rollback")
    assert undone and all(s["outcome"] in ("rolled_back", "skipped") for s in undone), undone
