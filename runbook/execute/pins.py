"""What the rollback of an unfinished run may still need on a host: the records (compose releases)
its snapshots name. Read from the saved run states on this control machine, so that a retention
rule on the host never prunes one of them (runbook.facts.releases).

Unfinished: a host whose state is not ``ok`` (succeeded) or ``rolled_back`` — a killed run
(``pending``), one that failed without rolling back, one whose rollback failed — and, in it, every
entry not rolled back yet. Each step kind names what its snapshots need (``needed_records``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runbook.kinds import base as kinds

FINISHED = frozenset({"ok", "rolled_back"})


def needed_by(doc: dict[str, Any]) -> set[str]:
    """The records the unfinished hosts of one saved run state still need."""
    out: set[str] = set()
    for hs in (doc.get("hosts") or {}).values():
        if not isinstance(hs, dict) or hs.get("status") in FINISHED:
            continue
        for entry in hs.get("entries") or []:
            if not isinstance(entry, dict) or entry.get("status") == "rolled_back":
                continue
            kind = kinds.get(str(entry.get("module")))
            if kind is None:
                continue
            for snap in entry.get("snapshots") or []:
                if isinstance(snap, dict):
                    out.update(kind.needed_records(snap))
    return out


def scan(paths: Iterable[Path], marker: bytes = b"_release") -> set[str]:
    out: set[str] = set()
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        if marker not in raw:  # most runs deploy no compose project: skip parsing them
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out |= needed_by(doc)
    return out


class Pinned:
    """The records every unfinished run under ``root`` may still need (read once, on first use)."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._names: frozenset[str] | None = None

    def __call__(self) -> frozenset[str]:
        with self._lock:
            if self._names is None:
                self._names = frozenset(scan(sorted((self.root / "runs").glob("*/state.json"))))
            return self._names
