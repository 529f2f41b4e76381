"""A run's timeline as plain rows (the CLI renders them as a table)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runbook.audit.chain import parse_line


@dataclass
class Row:
    seq: int
    offset: str  # "+12.345s" from the run's first record
    event: str
    host: str = ""
    phase: str = ""
    step: str = ""
    outcome: str = ""
    rc: str = ""
    duration: str = ""
    detail: str = ""


@dataclass
class Timeline:
    path: str
    run_id: str = ""
    header: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    unreadable: int = 0


def _parse_ts(ts: Any) -> datetime | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def _duration(value: Any) -> str:
    if value is None:
        return ""
    try:
        return f"{float(value):.3f}s"
    except (TypeError, ValueError):
        return str(value)


def timeline(path: str | os.PathLike[str]) -> Timeline:
    p = Path(path)
    tl = Timeline(str(p))
    start: datetime | None = None
    with open(p, "rb") as fh:
        for raw in fh:
            rec = parse_line(raw.strip()) if raw.strip() else None
            if rec is None or type(rec.get("seq")) is not int:
                tl.unreadable += 1
                continue
            ts = _parse_ts(rec.get("ts"))
            if start is None:
                start = ts
                tl.run_id = str(rec.get("run_id", ""))
                data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
                tl.header = {
                    "started": rec.get("ts"),
                    "runbook": data.get("runbook_file") or data.get("runbook"),
                    "operator": data.get("operator"),
                    "signer": rec.get("key_id") or "unsigned",
                    "prev_run": (rec.get("prev_run") or {}).get("run_id"),
                }
            offset = f"+{(ts - start).total_seconds():.3f}s" if ts is not None and start is not None else "?"
            event = str(rec.get("event", "?"))
            data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
            detail = ""
            if event == "seal":
                detail = ("final " if rec.get("final") else "") + ("signed" if rec.get("sig") else "unsigned")
            elif isinstance(data.get("msg"), str):
                detail = data["msg"]
            elif event == "step.start" and isinstance(rec.get("command"), str):
                detail = rec["command"]
            tl.rows.append(
                Row(
                    seq=rec["seq"],
                    offset=offset,
                    event=event,
                    host=str(rec.get("host") or ""),
                    phase=str(rec.get("phase") or ""),
                    step=str(rec.get("step") or ""),
                    outcome=str(rec.get("outcome") or ""),
                    rc="" if rec.get("rc") is None else str(rec.get("rc")),
                    duration=_duration(rec.get("duration")),
                    detail=detail[:120],
                )
            )
    return tl
