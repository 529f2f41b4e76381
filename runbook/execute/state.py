"""Run state on the control machine: what each host completed, with its snapshots, persisted after
every change so that a crash loses nothing (``runbook rollback NAME --run RUN_ID``, ``--resume``).

Stored under ``.runbook/runs/<run_id>/state.json`` (directory 0700, file 0600): snapshots may hold
previous file contents, which can include secrets.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runbook.errors import RunbookError


@dataclass
class Entry:
    """One completed (or in-progress) mutating step execution on one host."""

    phase: str
    index: int
    name: str
    module: str
    args: Any  # rendered args (needed to undo)
    item: Any = None
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running | ok | changed | failed | rolled_back | rollback_failed
    changed: bool = False
    has_undo_step: bool = False
    delegate_to: str | None = None  # the host the step (and so its undo) ran on, when delegated


@dataclass
class HostState:
    entries: list[Entry] = field(default_factory=list)
    status: str = "pending"  # pending | ok | failed | rolled_back | rollback_failed | unreachable
    last_completed: int = -1  # index of the last step completed in the steps phase


class RunState:
    def __init__(self, root: Path, run_id: str, meta: dict[str, Any]):
        self.dir = root / "runs" / run_id
        self.path = self.dir / "state.json"
        self.run_id = run_id
        self.meta = meta
        self.hosts: dict[str, HostState] = {}
        self._lock = threading.Lock()

    def host(self, name: str) -> HostState:
        with self._lock:
            return self.hosts.setdefault(name, HostState())

    def save(self) -> None:
        with self._lock:
            doc = {
                "run_id": self.run_id,
                "meta": self.meta,
                "hosts": {h: asdict(s) for h, s in self.hosts.items()},
            }
            data = json.dumps(doc, default=str, indent=1).encode()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, root: Path, run_id: str) -> RunState:
        runs = root / "runs"
        path = runs / run_id / "state.json"
        if not path.exists():
            matches = (
                sorted(p for p in runs.glob(f"{run_id}*") if (p / "state.json").exists())
                if runs.exists()
                else []
            )
            if len(matches) != 1:
                raise RunbookError(
                    f"no saved state for run {run_id!r} under {runs}",
                    hint="give the run id printed at the end of the run (or its unique prefix)",
                )
            path = matches[0] / "state.json"
        doc = json.loads(path.read_text())
        st = cls(root, doc["run_id"], doc.get("meta", {}))
        for h, hs in doc.get("hosts", {}).items():
            entries = [Entry(**e) for e in hs.get("entries", [])]
            st.hosts[h] = HostState(
                entries=entries,
                status=hs.get("status", "pending"),
                last_completed=hs.get("last_completed", -1),
            )
        return st
