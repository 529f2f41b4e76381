"""Which steps a rollback cannot undo: the one home of that rule, for `validate`, `show`, `plan` and
the rollback itself.

A step of the steps phase (or one of its fallback steps) is *undoable* when it changes nothing (its
kind is read-only, ``changes: false``, ``changed_when: false``, ``ansible.playbook`` in check mode),
has an ``undo:`` step, or its kind undoes it from a snapshot (copy, template, file, compose.*,
postgres.migrate ...). A step that declares ``undo: none`` (or ``undo: {none: REASON}``) needs no
undo, and so does a kind that says so itself (a webhook message cannot be unsent). Anything else
(``shell``, ``command``, ``ansible.playbook``, ``http.request`` POST, ``postgres.restore``) that changed
the host cannot be undone: validate/show/plan list it, and a rollback that passes over it reports it
as NOT undone and exits 4 (a human must act).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runbook.kinds import base as kinds
from runbook.model.runbook import Runbook, Step

DECLARE_HINT = "give it an undo: step, or declare `undo: none` (or `undo: {none: REASON}`) if it needs none"


def _never_changes(step: Step, kind: kinds.StepKind) -> bool:
    if step.changes is False:
        return True
    cw = step.changed_when
    if cw is not None and all(c is False or str(c).strip().lower() == "false" for c in cw):
        return True  # changed_when: false (or empty): it never reports a change
    try:
        return not kind.mutates(kind.normalize(step.args))
    except (TypeError, AttributeError, ValueError):
        return False


def no_undo_reason(step: Step) -> str | None:
    """Why ``step`` needs no undo although it may change things: its declared reason or its kind's
    (None: it needs an undo, or it changes nothing)."""
    if step.undo_none is not None:
        return step.undo_none or "declared undo: none"
    kind = kinds.get(step.module)
    return kind.no_undo_needed if kind is not None and kind.no_undo_needed else None


def cannot_undo(step: Step) -> str | None:
    """Why a rollback cannot undo what ``step`` changes, or None when it can (or need not)."""
    if step.top_phase != "steps" or ".undo" in step.phase:
        return None
    kind = kinds.get(step.module)
    if kind is None or step.undo is not None or kind.can_undo or no_undo_reason(step) is not None:
        return None
    if _never_changes(step, kind):
        return None
    return f"{step.module} changes the host and has no undo"


def gaps(rb: Runbook) -> Iterator[tuple[Step, str]]:
    """The steps of ``rb`` whose changes a rollback cannot undo, with why (none when the runbook
    gives its own rollback steps, or says ``rollback: none``: no step is undone one by one then)."""
    if rb.rollback != "auto":
        return
    for step in rb.all_steps():
        why = cannot_undo(step)
        if why:
            yield step, why


def describe(step: Step, why: str) -> str:
    where = f"{step.location.file}:{step.location.line}: " if step.location.line else ""
    return f"{where}step '{step.label}' ({step.key}): {why}; a rollback cannot undo it"


def as_dicts(rb: Runbook) -> list[dict[str, Any]]:
    """The gaps for JSON output."""
    return [
        {"step": s.label, "key": s.key, "module": s.module, "line": s.location.line, "why": why}
        for s, why in gaps(rb)
    ]
