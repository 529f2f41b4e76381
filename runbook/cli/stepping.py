"""--step at the terminal: the question runbook.execute.stepgate asks before each step (the live
display stands still while the operator answers)."""

from __future__ import annotations

import contextlib
from typing import Any


def step_gate(interactive: bool, renderer: Any) -> Any:
    """--step: each step of the steps phase is confirmed at the terminal (runbook.execute.stepgate);
    refused (usage error) when no one can answer. ``renderer()`` gives the live display to pause."""
    if not interactive:
        from runbook.errors import UsageError

        raise UsageError(
            "--step asks before each step, but stdin is not a terminal (or --output is not text)",
            hint="run it from a terminal, or drop --step (use --list-steps, then --tags/--start-at)",
        )
    from rich.prompt import Prompt

    from runbook.cli.console import escape, make_console
    from runbook.execute.stepgate import StepGate

    def ask(question: str) -> str:
        r = renderer()
        with r.paused() if r is not None else contextlib.nullcontext():
            return Prompt.ask(escape(question), console=make_console(stderr=True), default="n")  # as Ansible: no

    return StepGate(ask)
