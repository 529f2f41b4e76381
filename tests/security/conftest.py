"""Fixtures of the security tests: the real CLI in-process, real sshd and PostgreSQL servers, and a
tally of the payload × argument combinations that held (printed at the end of the run)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runbook.cli.main import cli as runbook_cli
from tests.fixtures.postgres import postgres_server  # noqa: F401 - session fixture
from tests.fixtures.sshd import ssh_lab  # noqa: F401 - session fixture
from tests.steps.support import http_server  # noqa: F401 - a real HTTP server


class Tally:
    """Which combinations were tried and held (a test records one only after its checks passed)."""

    def __init__(self) -> None:
        self.by_where: Counter[str] = Counter()
        self.payloads: dict[str, set[str]] = {}
        self.arguments: dict[str, set[str]] = {}

    def held(self, where: str, argument: str, payload: str, mode: str) -> None:
        self.by_where[where] += 1
        self.payloads.setdefault(where, set()).add(payload)
        self.arguments.setdefault(where, set()).add(argument)


TALLY = Tally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.by_where:
        return
    tr = terminalreporter
    tr.section("hostile input: payload x argument combinations that held")
    for where, n in sorted(TALLY.by_where.items()):
        tr.line(
            f"{where:<16} {n:>5} held  ({len(TALLY.payloads[where])} payloads x "
            f"{len(TALLY.arguments[where])} arguments/places, each as exec and plan where both apply)"
        )
    tr.line(f"{'total':<16} {sum(TALLY.by_where.values()):>5} held")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``cli(*args)``: the real CLI in-process; an exception escaping it fails the test loudly."""
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    monkeypatch.setenv("COLUMNS", "240")
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY", "RUNBOOK_AUDIT_DIR"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str) -> Result:
        res = CliRunner().invoke(runbook_cli, [str(a) for a in args], catch_exceptions=True)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return res

    return run
