"""A run's timeline as plain rows (the CLI renders them as a table).

Read from files that may be corrupt or hostile: every value is turned into printable text (control
characters such as terminal escape sequences are shown as ``\x1b``), and lines that are not audit
records are counted in ``Timeline.unreadable`` (with their line numbers), never raised.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runbook.audit.chain import parse_line
from runbook.audit.safeio import MAX_RUN_FILE, LineTooLong, bounded_lines, open_regular

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(value: Any, limit: int = 0) -> str:
    """``value`` as one line of text without control characters (they become ``\\xNN``)."""
    try:
        text = value if isinstance(value, str) else str(value)
    except (ValueError, RecursionError):  # an integer too long to print, a pathologically deep list
        text = f"<unprintable {type(value).__name__}>"
    if limit and len(text) > limit:
        text = text[:limit]
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", text
    )


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
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers (first 20)


def _parse_ts(ts: Any) -> datetime | None:
    if not isinstance(ts, str):
        return None
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None  # naive and aware times do not subtract


def _duration(value: Any) -> str:
    if value is None:
        return ""
    try:
        return f"{float(value):.3f}s"
    except (TypeError, ValueError, OverflowError):
        return printable(value, 40)


def _approval(data: dict[str, Any], outcome: Any) -> str:
    """Who approved (``by alice, carol (2 of 2)``), or why not, as the approval record says."""
    if outcome != "approved":
        return printable(data.get("approved_by", ""), 300)
    people = data.get("approvers")
    names = [printable(a.get("name"), 100) for a in people if isinstance(a, dict)] if isinstance(people, list) else []
    required = data.get("required")
    if names:
        return "by " + ", ".join(names) + (f" ({len(names)} of {required})" if type(required) is int else "")
    return "by " + printable(data.get("approved_by", "?"), 200)


def timeline(path: str | os.PathLike[str]) -> Timeline:
    """Read a run file (OSError if it cannot be read, ``safeio.UnsafeFile`` if it is not a regular
    file of sane size; corrupt or overlong lines are counted, not raised)."""
    p = Path(path)
    tl = Timeline(str(p))
    start: datetime | None = None
    with open_regular(p, "run file", MAX_RUN_FILE) as fh:
        for lineno, raw in enumerate(bounded_lines(fh), 1):
            too_long = isinstance(raw, LineTooLong)
            rec = parse_line(raw.strip()) if raw.strip() and not too_long else None
            if rec is None or type(rec.get("seq")) is not int:
                tl.unreadable += 1
                if len(tl.bad_lines) < 20:
                    tl.bad_lines.append(lineno)
                continue
            ts = _parse_ts(rec.get("ts"))
            data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
            if not tl.rows:
                start = ts
                tl.run_id = printable(rec.get("run_id", ""), 200)
                prev_run = rec.get("prev_run") if isinstance(rec.get("prev_run"), dict) else {}
                operator = data.get("operator") if isinstance(data.get("operator"), dict) else {}
                tl.header = {
                    "started": printable(rec.get("ts"), 60),
                    "runbook": printable(data.get("runbook_file") or data.get("runbook"), 300),
                    "operator": f"{printable(operator.get('user'), 100)}@{printable(operator.get('host'), 100)}",
                    "signer": printable(rec.get("key_id") or "unsigned", 200),
                    "prev_run": printable(prev_run.get("run_id"), 200),
                }
            offset = "?"
            if ts is not None and start is not None:
                offset = f"+{(ts - start).total_seconds():.3f}s"
            event = printable(rec.get("event", "?"), 60)
            detail: Any = ""
            if event == "seal":
                detail = ("final " if rec.get("final") is True else "") + (
                    "signed" if rec.get("sig") else "unsigned"
                )
            elif event == "approval":
                detail = _approval(data, rec.get("outcome"))
            elif isinstance(data.get("msg"), str):
                detail = data["msg"]
            elif event == "step.start" and isinstance(rec.get("command"), str):
                detail = rec["command"]
            tl.rows.append(
                Row(
                    seq=rec["seq"],
                    offset=offset,
                    event=event,
                    host=printable(rec.get("host") or "", 200),
                    phase=printable(rec.get("phase") or "", 60),
                    step=printable(rec.get("step") or "", 200),
                    outcome=printable(rec.get("outcome") or "", 60),
                    rc="" if rec.get("rc") is None else printable(rec.get("rc"), 20),
                    duration=_duration(rec.get("duration")),
                    detail=printable(detail, 120),
                )
            )
    return tl
