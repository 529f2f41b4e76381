from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.audit.keys import AllowedSigners, Signer, generate_key
from tests.fixtures.postgres import postgres_server  # noqa: F401 - session fixture


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keys, allowed signers and local heads never come from (or go to) the real home directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # local audit heads
    for var in (
        "RUNBOOK_AUDIT_HEADS",
        "RUNBOOK_AUDIT_DSN",
        "RUNBOOK_ALLOWED_SIGNERS",
        "RUNBOOK_AUDIT_KEY",
        "RUNBOOK_AUDIT_KEY_PASSPHRASE",
        "RUNBOOK_AUDIT_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def key(tmp_path: Path) -> Signer:
    return generate_key(tmp_path / "keys" / "audit_ed25519", "ops@example.com")


@pytest.fixture
def other_key(tmp_path: Path) -> Signer:
    return generate_key(tmp_path / "keys" / "intruder_ed25519", "mallory@example.com")


@pytest.fixture
def trust(key: Signer, tmp_path: Path) -> AllowedSigners:
    path = tmp_path / "allowed_signers"
    path.write_text(f"ops@example.com {key.public_line}\n")
    return AllowedSigners.load(path)
