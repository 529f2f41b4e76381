"""The people who approve a run's `approve` steps, as a run is given them (runbook.execute.approval
decides whether they are enough): ``--approver NAME`` (repeatable), else ``$RUNBOOK_APPROVER``
(comma-separated), else the principal of the audit signing key (its ``.pub`` comment, as
``audit keygen`` wrote it), else none (the engine falls back to user@host)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runbook.errors import UsageError

ENV = "RUNBOOK_APPROVER"


def identities(flags: tuple[str, ...], key_path: str | None) -> list[Any]:
    from runbook.execute.approval import Identity

    given = [(n, "--approver") for f in flags for n in f.split(",")]
    if not given:
        given = [(n, ENV) for n in os.environ.get(ENV, "").split(",")]
    out = []
    for name, source in given:
        name = " ".join(name.split())
        if not name:
            continue
        if not name.isprintable() or len(name) > 200:
            raise UsageError(f"{source}: {name[:40]!r} is not a usable approver name", hint="e.g. --approver alice")
        out.append(Identity(name, source))
    if out:
        return out
    principal = key_principal(key_path)
    return [Identity(principal, "signing key")] if principal else []


def key_principal(key_path: str | None) -> str | None:
    """The comment of the signing key's public half (``audit keygen --comment``), if it is there."""
    if key_path is None:
        from runbook.audit.paths import default_key_path

        key_path = str(default_key_path())
    pub = Path(str(key_path) + ".pub")
    try:
        if not pub.is_file() or pub.stat().st_size > 16384:
            return None
        parts = pub.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return None
    name = parts[2] if len(parts) > 2 else ""
    return name if name.isprintable() and 0 < len(name) <= 200 else None
