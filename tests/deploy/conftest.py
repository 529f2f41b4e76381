"""Fixtures for the deploy tests: real dockerd, PostgreSQL and Redis as the session's own processes."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook.execute.driver import Drive
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.local import LocalTransport
from runbook.kinds import base as kinds
from runbook.kinds.base import Outcome, StepContext
from tests.fixtures.dockerd import dockerd  # noqa: F401 - session fixture
from tests.fixtures.postgres import postgres_server  # noqa: F401 - session fixture
from tests.fixtures.redis import redis_server  # noqa: F401 - session fixture
from tests.fixtures.sshd import ssh_lab  # noqa: F401 - session fixture

REPO = Path(__file__).resolve().parents[2]
_run_ids = itertools.count(1)


class Runner:
    """Run step kinds through the real Driver on the local transport (what the engine does)."""

    def __init__(self, project_dir: Path = REPO, dry_run: bool = False):
        self.project_dir = project_dir
        self.dry_run = dry_run
        self.transport = LocalTransport(HostSpec.from_vars("localhost", {"ansible_connection": "local"}))
        self.last: Drive | None = None

    def ctx(self, run_id: str | None = None, variables: Mapping[str, Any] | None = None) -> StepContext:
        return StepContext(
            host="localhost",
            vars=dict(variables or {}),
            project_dir=self.project_dir,
            run_id=run_id or f"run{next(_run_ids):04d}",
            dry_run=self.dry_run,
            render_str=_render(dict(variables or {})),
        )

    def run(self, name: str, args: dict[str, Any], ctx: StepContext | None = None) -> Outcome:
        kind = kinds.get(name)
        assert kind is not None, name
        args = kind.normalize(args)
        self.last = Drive(transport=self.transport, dry_run=self.dry_run)
        return self.last.run(kind.run(args, ctx or self.ctx()))

    def undo(
        self, name: str, args: dict[str, Any], snapshot: Mapping[str, Any], ctx: StepContext | None = None
    ):
        kind = kinds.get(name)
        assert kind is not None
        self.last = Drive(transport=self.transport)
        return self.last.run(kind.undo(kind.normalize(args), snapshot, ctx or self.ctx()))


def _render(variables: dict[str, Any]):
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return lambda text: env.from_string(text).render(**variables)


@pytest.fixture
def runner() -> Runner:
    return Runner()


@pytest.fixture
def db(postgres_server) -> str:  # noqa: F811 - the session fixture above
    """A fresh database on the session server; its DSN (with the password)."""
    name = "t_" + secrets.token_hex(4)
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.dsn.rsplit("/", 1)[0] + "/" + name


# Measured by tests/deploy/test_deploy_e2e.py (never asserted: reported here, target < 60 s).
ROLLBACK_TIMES: list[dict[str, Any]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROLLBACK_TIMES:
        return
    tr = terminalreporter
    tr.section("deploy-4gb: time from failure to the previous release healthy (target < 60 s)")
    tr.line(f"{'injected failure':<50} {'failed at':<34} {'rollback':>9} {'v1 healthy':>11}")
    for r in ROLLBACK_TIMES:
        tr.line(
            f"{r['case'][:50]:<50} {r['failed_step'][:34]:<34} {r['rollback_s']:>8.2f}s {r['healthy_after_s']:>10.2f}s"
        )
