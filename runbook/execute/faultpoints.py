"""A test-only fault hook: make this runbook process SIGKILL itself at a named point, or write down every
point it passes (how tests/faults enumerates a runbook's kill points). Inert unless ``RUNBOOK_FAULT`` is
set, which only the fault-injection matrix does:

  RUNBOOK_FAULT=trace@/path/file      append each point passed to the file, one a line, and go on
  RUNBOOK_FAULT=kill@POINT            SIGKILL this process as it passes POINT (after its audit record
                                      and state are on disk: the same as the power going out there)

A point is ``PHASE|KIND|STEP|N``: every event the engine emits (``steps|step.start|Deploy the stack|1``,
``steps|snapshot|…``, ``steps|step.end|…``, ``rollback|rollback.step|…``) and every mutating action a
step performs (``steps|action.Run|Deploy the stack|2``: right after the step's 2nd change, before the
step can record its outcome). N counts the passes of that same point in the process (loop items,
retries), so a point names one moment of a run exactly. The environment is read once, here.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "RUNBOOK_FAULT"

_spec = os.environ.get(ENV, "")
_mode, _, _arg = _spec.partition("@")
_seen: Counter[str] = Counter()
_lock = threading.Lock()
_where = threading.local()  # the (phase, step) this thread is in: the step a mutating action belongs to


def armed() -> bool:
    return _mode in ("trace", "kill") and bool(_arg)


def event(kind: str, phase: str | None, step: str | None) -> None:
    """The engine emitted an event (called by the EventBus once subscribers and barriers are done)."""
    if not armed():
        return
    if kind in ("step.start", "rollback.start", "rollback.step"):  # undo actions follow rollback.*
        _where.at = (phase or "", step or "")
    _reached(phase or "", kind, step or "")


def action(kind: str) -> None:
    """A step just performed a mutating action (called by the Driver)."""
    if not armed():
        return
    phase, step = getattr(_where, "at", ("", ""))
    _reached(phase, f"action.{kind}", step)


def _reached(phase: str, kind: str, step: str) -> None:
    base = f"{phase}|{kind}|{step}"
    with _lock:
        _seen[base] += 1
        point = f"{base}|{_seen[base]}"
        if _mode == "trace":
            with open(_arg, "a", encoding="utf-8") as f:
                f.write(point + "\n")
            return
    if point == _arg:
        os.kill(os.getpid(), signal.SIGKILL)
