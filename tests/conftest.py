"""Suite-wide rules.

In CI (CI=true) a test that skips because a real component is missing (sshd, dockerd, PostgreSQL,
Redis, Prometheus, ansible-core, sudo …) FAILS instead: .ci/run installs all of them, so such a skip
means the install broke, and a green run must never hide it.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator

import pytest

MISSING = (
    "not installed",
    "not found",
    "needs root",
    "add it to .ci/run",
    "cannot run here",
    "no compose plugin",
)


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """A test (or the code it runs in-process: the CLI through click's CliRunner, runbook.run(),
    ansible_runner.run()) must leave SIGINT and SIGTERM handled as it found them: a handler left
    installed swallows a later test's Ctrl-C (tests/ssh/test_frozen.py's real SIGINT). The handler
    is put back, and the test that left it fails, naming it."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    left = {sig: h for sig, h in ((s, signal.getsignal(s)) for s in before) if h != before[sig]}
    for sig in left:
        signal.signal(sig, before[sig])
    assert not left, "the test left signal handlers installed: " + ", ".join(
        f"{signal.Signals(sig).name}: {h!r} (was {before[sig]!r})" for sig, h in left.items()
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


# Two workers (the README's `pytest -n 2`, --dist=loadgroup): a group's tests run one after another on
# one worker, the groups side by side. What a test directory does to this machine must not meet what
# runs on the other worker at the same moment, so the split is by what is shared:
# - "machine": the directories that share deploy-4gb@localhost's lock (/tmp/runbook-locks/NAME@HOST)
#   and its ports, create system users, run apt and ansible-playbook, start Molecule's stack, build
#   and pipx-install the wheel: one after another, as without workers (and any directory not named
#   below, so a new one is safe until it is looked at);
# - "isolated": the fault matrix (its hosts are matrix-*, so are its deploy locks), the seeds (their
#   own runbooks on localhost: no other directory runs them) and the integrations (their own host
#   aliases): safe beside "machine", not checked against one another, so one group too;
# - every file of the directories in FREE is a group of its own, scheduled on whichever worker is
#   free: they parse, render and sign, or run on scratch directories, free ports and the worker's own
#   sshd lab and database (no deploy lock, no shared port, no system user).
# Each worker starts its own dockerd, PostgreSQL, Redis and sshd lab (session fixtures; own data dirs,
# sockets and free ports). xdist hands a worker its next group when it is almost idle, so the two
# long groups start first and the per-file ones fill in behind them.
ISOLATED = {"faults", "seeds", "integrations"}
FREE = {"inventory", "audit_tamper", "robustness", "kinds", "audit", "render", "security", "ssh", "core"}


def xdist_group_of(relpath: str) -> str:
    """The group a test file (its path under tests/) runs in."""
    top = relpath.split("/")[0]
    if top in FREE:
        return "free:" + relpath
    return "isolated" if top in ISOLATED else "machine"


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the group into the node id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    tests = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        rel = os.path.relpath(str(item.path), tests).replace(os.sep, "/")
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(rel)))
