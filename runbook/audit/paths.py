"""Where the audit signing key and the allowed-signers file are by default: read without importing
the cryptography that reading them needs (a dry run asks for the key's principal, runbook.session.
approvers, and signs nothing)."""

from __future__ import annotations

import os
from pathlib import Path

SIGNERS_ENV = "RUNBOOK_ALLOWED_SIGNERS"
KEY_ENV = "RUNBOOK_AUDIT_KEY"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runbook"


def default_key_path() -> Path:
    """Where ``keygen`` writes and the engine looks for the signing key (``$RUNBOOK_AUDIT_KEY`` wins)."""
    env = os.environ.get(KEY_ENV)
    return Path(env).expanduser() if env else config_dir() / "audit_ed25519"


def default_allowed_signers() -> Path:
    env = os.environ.get(SIGNERS_ENV)
    return Path(env).expanduser() if env else config_dir() / "allowed_signers"
