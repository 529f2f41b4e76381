"""Asking a terminal who approves; the approvers themselves (--approver, $RUNBOOK_APPROVER, the
signing key's principal) are in runbook.session.approvers."""

from __future__ import annotations

from runbook.session.approvers import ENV, identities, key_principal

__all__ = ["ENV", "ask_name", "identities", "key_principal"]


def ask_name(question: str, default: str) -> str:
    """A name typed at the terminal (stderr: stdout may be a JSON document)."""
    from rich.prompt import Prompt

    from runbook.cli.console import escape, make_console

    return Prompt.ask(escape(question), console=make_console(stderr=True), default=default or None) or ""
