"""The newcomer's tests: a scratch project (tests.core's), keys and local heads kept in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.conftest import Project
from tests.core.conftest import project as project  # fixture


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys, allowed signers and local heads never come from (or go to) the real home directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for var in (
        "RUNBOOK_AUDIT_HEADS", "RUNBOOK_AUDIT_DSN", "RUNBOOK_ALLOWED_SIGNERS", "RUNBOOK_AUDIT_KEY",
        "RUNBOOK_AUDIT_KEY_PASSPHRASE", "RUNBOOK_AUDIT_DIR", "RUNBOOK_APPROVER",
    ):  # fmt: skip
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def audited(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The project with its audit trail switched on (./audit)."""
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    return project
