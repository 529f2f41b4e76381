"""Fixtures of the fault-injection matrix: the session's real dockerd, PostgreSQL, Redis and sshd
(tests/fixtures), and the matrix table printed at the end of the session (and written as JSON Lines to
$RUNBOOK_FAULT_MATRIX_OUT when set: tests/faults/report.py turns it into docs/fault-matrix.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.faults.harness import FULL, MATRIX, ROTATION, ROTATION_ENV
from tests.fixtures.dockerd import dockerd  # noqa: F401 - session fixture
from tests.fixtures.postgres import postgres_server  # noqa: F401 - session fixture
from tests.fixtures.redis import redis_server  # noqa: F401 - session fixture
from tests.fixtures.sshd import ssh_lab, sshd_factory  # noqa: F401 - fixtures
from tests.integrations.conftest import prometheus  # noqa: F401 - session fixture (canary-rollout's gates)
from tests.seeds.conftest import seed_images  # noqa: F401 - session fixture

OUT_ENV = "RUNBOOK_FAULT_MATRIX_OUT"


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    out = os.environ.get(OUT_ENV)
    if out and MATRIX:
        with open(Path(out), "a", encoding="utf-8") as f:
            for row in MATRIX:
                f.write(json.dumps(row) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MATRIX:
        return
    tr = terminalreporter
    tr.section("fault-injection matrix (kill, then recover; time from the kill to healthy)")
    tr.line("every point (RUNBOOK_FAULT_MATRIX=full)" if FULL else
            f"the CI sample, rotation {ROTATION} (set {ROTATION_ENV}={ROTATION} to try the same points again)")  # fmt: skip
    tr.line(f"{'runbook':<15} {'via':<6} {'point':<46} {'recovery':<9} {'restored':<9} {'healthy':>8}")
    for r in MATRIX:
        t = "-" if r["seconds_to_healthy"] is None else f"{r['seconds_to_healthy']:.1f}s"
        tr.line(
            f"{r['runbook']:<15} {r['transport']:<6} {r['point'][:46]:<46} {r['recovery']:<9} "
            f"{'yes' if r['restored'] else 'NO':<9} {t:>8}"
        )
        if not r["restored"]:
            tr.line(f"{'':<15} {r['detail'][:200]}")
