"""Suite-wide rules.

In CI (CI=true) a test that skips because a real component is missing (sshd, dockerd, PostgreSQL,
Redis, Prometheus, ansible-core, sudo …) FAILS instead: .ci/run installs all of them, so such a skip
means the install broke, and a green run must never hide it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

MISSING = (
    "not installed",
    "not found",
    "needs root",
    "add it to .ci/run",
    "cannot run here",
    "no compose plugin",
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("CI") or not report.skipped:
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(m in reason for m in MISSING):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI because a required component is missing: {reason}"


def pytest_configure(config: pytest.Config) -> None:
    """Every run the suite writes moves a local audit head (runbook.audit.head): keep those out of
    the real ~/.local/state. Tests of the local head itself set their own place."""
    if "RUNBOOK_AUDIT_HEADS" not in os.environ:
        os.environ["RUNBOOK_AUDIT_HEADS"] = _HEADS = tempfile.mkdtemp(prefix="runbook-test-heads-")
        config.add_cleanup(lambda: shutil.rmtree(_HEADS, ignore_errors=True))
