"""Which steps can run on a host whose ``ansible_connection`` has no native runbook transport.

A step kind that runs through Ansible itself (ansible-runner: ``ansible.playbook`` and the
Ansible-module steps) or on the control node only (set_fact, debug, assert, ...) says so with
``needs_native_transport = False``; every other step needs runbook's own transport to the host. On a
host without one, those steps are refused before anything runs (validate reports them; exec and
plan refuse with exit 3).
"""

from __future__ import annotations

from collections.abc import Iterable

from runbook.kinds import base as kinds
from runbook.model.connection import NOT_NATIVE_HINT, not_native_message
from runbook.model.runbook import Step


def needs_native_transport(step: Step) -> bool:
    """Does this step reach its host through runbook's own transport?"""
    if step.delegate_to:  # it runs on the host it is delegated to
        return False
    kind = kinds.get(step.module)
    return bool(getattr(kind, "needs_native_transport", True)) if kind is not None else True


def native_only_steps(steps: Iterable[Step]) -> list[Step]:
    return [s for s in steps if needs_native_transport(s)]


def refusal(host: str, connection: str, steps: list[Step], *, lock: bool = False) -> tuple[str, str]:
    """The message and hint for a host that native steps (or the deploy lock, kept on the host)
    target but cannot reach."""
    what = [f"'{s.label}' ({s.module})" for s in steps] + (["the deploy lock (lock:)"] if lock else [])
    names = ", ".join(what[:5]) + (" ..." if len(what) > 5 else "")
    return f"{not_native_message(host, connection)}; these steps cannot: {names}", NOT_NATIVE_HINT
