"""Ansible's vault options on every command that reads an inventory, and ansible.cfg's settings.

``@ansible_options(run=True)`` (under ``@handle_errors``) adds ``--vault-id [LABEL@]SOURCE``
(repeatable), ``--vault-password-file FILE`` (repeatable) and ``--ask-vault-pass`` / ``-J``; before
the command runs it reads ansible.cfg and the ANSIBLE_* environment and configures the vault keyring
(runbook.model.ansible_setup.prepare). Every source is read and every prompt asked at once, as
Ansible does (a source that fails is an error only when no other gives a secret). With
``run=True`` (exec, plan, rollback) ``host_key_checking = False`` is refused (exit 3); the other
commands warn.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from runbook.errors import RefusedError

VAULT_KEYS = ("vault_ids", "vault_password_files", "ask_vault_pass")


def _prompt(text: str) -> str:
    try:
        return click.prompt(text.rstrip(": ").rstrip(), hide_input=True, err=True, default="", show_default=False)
    except click.Abort:  # end of input (no terminal) or Ctrl-C at the prompt: no answer
        raise EOFError from None


def apply(vault_ids: tuple[str, ...] = (), vault_password_files: tuple[str, ...] = (),
          ask_vault_pass: bool = False, *, run: bool = False) -> Any:  # fmt: skip
    """Configure the run from these options + ansible.cfg + environment; returns the AnsibleConfig."""
    from runbook.model import vault
    from runbook.model.ansible_setup import host_key_refusal, prepare

    cfg = prepare(
        vault.VaultOptions(
            vault_ids=tuple(vault_ids),
            password_files=tuple(vault_password_files),
            ask_vault_pass=ask_vault_pass,
            prompt=_prompt,
        )
    )
    for w in cfg.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    refusal = host_key_refusal(cfg)
    if refusal and run:
        raise RefusedError(refusal[0] + "; nothing was changed", hint=refusal[1])
    if refusal:
        click.secho(f"warning: {refusal[0]}\n  hint: {refusal[1]}", fg="yellow", err=True)
    if vault.is_configured():
        vault.keyring()  # read every source and ask now, before any output (as Ansible does)
    return cfg


def ansible_options(run: bool = False) -> Callable[[Any], Any]:
    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from runbook.model.ansible_setup import reset

            values = {k: kwargs.pop(k) for k in VAULT_KEYS if k in kwargs}
            try:
                apply(**values, run=run)
                return fn(*args, **kwargs)
            finally:
                reset()

        opts = [
            click.option(
                "--vault-id", "vault_ids", multiple=True, metavar="[LABEL@]SOURCE",
                help="A vault identity (repeatable): SOURCE is a password file, an executable "
                "(its stdout; a *-client script gets --vault-id LABEL) or 'prompt'.",
            ),
            click.option(
                "--vault-password-file", "--vault-pass-file", "vault_password_files", multiple=True,
                metavar="FILE", help="Vault password file or script (repeatable).",
            ),
            click.option(
                "-J", "--ask-vault-pass", "--ask-vault-password", "ask_vault_pass", is_flag=True,
                help="Ask for the vault password.",
            ),
        ]  # fmt: skip
        for o in reversed(opts):
            wrapper = o(wrapper)
        return wrapper

    return decorate
