"""Maintenance windows: is now inside {start, end, tz, days}? (Windows may cross midnight.)"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runbook.errors import ValidationError
from runbook.model.runbook import Window

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _t(text: str) -> time:
    try:
        hh, mm = text.strip().split(":")[:2]
        return time(int(hh), int(mm))
    except ValueError:
        raise ValidationError(f"window time {text!r} is not HH:MM") from None


def inside(window: Window, now: datetime | None = None) -> tuple[bool, str]:
    try:
        tz = ZoneInfo(window.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {window.tz!r} in window", hint="use an IANA name like UTC or Europe/Paris"
        ) from None
    now = (now or datetime.now(tz)).astimezone(tz)
    start, end, t = _t(window.start), _t(window.end), now.time()
    ok = (start <= t < end) if start <= end else (t >= start or t < end)
    if ok and window.days:
        # a window crossing midnight belongs to the day it started
        day = now if (start <= end or t >= start) else now - timedelta(days=1)
        ok = _DAYS[day.weekday()] in [d.lower()[:3] for d in window.days]
    desc = f"{window.start}-{window.end} {window.tz}" + (
        f" on {','.join(window.days)}" if window.days else ""
    )
    return ok, f"maintenance window {desc}; now {now:%a %H:%M} {window.tz}"
