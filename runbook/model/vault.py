"""Ansible-Vault values (``!vault |`` in YAML). Decrypted lazily with ansible-core's vault library,
only when a value is actually used; the plaintext is a Secret from then on."""

from __future__ import annotations

import os
from dataclasses import dataclass

from runbook.errors import Location, RenderError

_PLAIN: dict[tuple[str, str | None], str] = {}  # (ciphertext, password file) -> plaintext


@dataclass(frozen=True)
class VaultValue:
    ciphertext: str
    location: Location | None = None

    def __repr__(self) -> str:
        return "VaultValue(***)"

    def decrypt(self) -> str:
        path = os.environ.get("RUNBOOK_VAULT_PASSWORD_FILE") or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
        key = (self.ciphertext, path)
        if key not in _PLAIN:
            _PLAIN[key] = self._decrypt(path)
        return _PLAIN[key]

    def plaintext(self) -> str | None:
        """The plaintext when it can be decrypted (a password is configured), else None: what the
        redactor learns before a run, so a value is masked even where it shows before its use."""
        try:
            return self.decrypt()
        except (RenderError, OSError, UnicodeDecodeError):
            return None

    def _decrypt(self, path: str | None) -> str:
        if not path:
            raise RenderError(
                "an Ansible-Vault value is used but no vault password is configured",
                location=self.location,
                hint="set RUNBOOK_VAULT_PASSWORD_FILE (or ANSIBLE_VAULT_PASSWORD_FILE) to a file holding it",
            )
        try:
            from ansible.parsing.vault import VaultLib, VaultSecret
        except ImportError:
            raise RenderError(
                "decrypting Ansible-Vault values needs ansible-core", hint="pip install 'runbook[ansible]'"
            ) from None
        with open(os.path.expanduser(path), "rb") as fh:
            secret = VaultSecret(fh.read().strip())
        try:
            plain = VaultLib([("default", secret)]).decrypt(self.ciphertext.encode())
        except Exception as exc:  # AnsibleError subclasses
            raise RenderError(f"cannot decrypt vault value: {exc}", location=self.location) from None
        return plain.decode("utf-8")
