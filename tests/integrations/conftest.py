"""Fixtures: step kinds through the real Driver (local transport), the Coolify and webhook stand-ins,
and a real Prometheus (session-wide, the test session's own process)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from runbook.execute.driver import Drive
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.local import LocalTransport
from runbook.kinds import base as kinds
from runbook.kinds.base import Outcome, StepContext
from tests.integrations.prometheus_server import PrometheusServer, start_prometheus
from tests.standins.coolify import CoolifyStandIn
from tests.standins.webhook import WebhookStandIn

REPO = Path(__file__).resolve().parents[2]


class Runner:
    """Run a step kind the way the engine does: Drive(transport=LocalTransport).run(kind.run(args, ctx))."""

    def __init__(self, dry_run: bool = False):
        self.dry_run = dry_run
        self.transport = LocalTransport(HostSpec.from_vars("localhost", {"ansible_connection": "local"}))
        self.notes: list[str] = []
        self.last: Drive | None = None

    def ctx(self) -> StepContext:
        return StepContext(host="localhost", vars={}, project_dir=REPO, run_id="it0001", dry_run=self.dry_run)

    def drive(self, read_only: bool = False) -> Drive:
        self.last = Drive(
            transport=self.transport, dry_run=self.dry_run, read_only=read_only, on_note=self.notes.append
        )
        return self.last

    def run(self, name: str, args: dict[str, Any], read_only: bool = False) -> Outcome:
        kind = kinds.get(name)
        assert kind is not None, name
        args = kind.normalize(args)
        jsonschema.validate(args, kind.schema)
        return self.drive(read_only).run(kind.run(args, self.ctx()))

    def undo(self, name: str, args: dict[str, Any], snapshot: dict[str, Any]) -> Outcome:
        kind = kinds.get(name)
        assert kind is not None, name
        return self.drive().run(kind.undo(kind.normalize(args), snapshot, self.ctx()))

    def everything(self, out: Outcome) -> str:
        """Every text the step let out: outcome fields, notes, planned changes, snapshots."""
        d = self.last
        extra = [asdict(p) for p in d.planned] + d.snapshots + d.commands if d else []
        return json.dumps([asdict(out), self.notes, extra], default=str)


@pytest.fixture
def runner() -> Runner:
    return Runner()


@pytest.fixture
def dry_runner() -> Runner:
    return Runner(dry_run=True)


@pytest.fixture
def coolify() -> Iterator[CoolifyStandIn]:
    with CoolifyStandIn() as c:
        c.add_app("ok0s0cgw8ck0w8kgs8kk4kk8", "web", commit="1111111aaaa")
        c.add_finished("ok0s0cgw8ck0w8kgs8kk4kk8", "1111111aaaa")
        c.apps["ok0s0cgw8ck0w8kgs8kk4kk8"].commit = "2222222bbbb"  # a new commit to deploy
        yield c


@pytest.fixture
def webhook() -> Iterator[WebhookStandIn]:
    with WebhookStandIn() as w:
        yield w


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    with tempfile.TemporaryDirectory(prefix="runbook-prom-") as tmp:
        server = start_prometheus(Path(tmp))
        try:
            yield server
        finally:
            server.stop()
