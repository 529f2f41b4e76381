"""Secrets: found at render time, redacted everywhere output leaves the engine.

A value is secret when it comes from Ansible Vault, when its variable name looks like a credential
(*PASSWORD*, *TOKEN*, *SECRET*, *KEY*, *PASS*, *CREDENTIAL*, *DSN*/*_URL* carrying user:password@),
or when a ``no_log`` step produced it. The Redactor replaces every occurrence of every known secret
string (and the password part of any URL with credentials) with ``***``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|token|secret|(?<!public_)key|credential|private|api_?key|auth)", re.I
)
_NOT_SECRET_NAME = re.compile(
    r"(^|_)(key_id|keyid|key_file|keyfile|key_path|public_key|host_key_checking|keys?_dir|pubkey|key_type|"
    r"ssh_private_key_file|private_key_file|keyring)($|_)|_file$|_path$|_dir$",
    re.I,
)
# user:password@ in a URL; the password may hold spaces (an unencoded DSN: libpq refuses it, and its
# error message repeats it) but not a newline, '@' or '/'
_URL_CRED = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s](?:[^@/\n]*[^@/\s])?)@", re.I
)
# password=... in a keyword DSN (libpq quoting: '...' with \' and \\ escapes; an unterminated quote
# runs to the end of the line) or a command line
_KV_CRED = re.compile(
    r"(?i)\b(password|passwd|pwd)(\s*=\s*)('(?:[^'\\\n]|\\.)*'?|\"(?:[^\"\\\n]|\\.)*\"?|[^\s;'\"]+)"
)


def is_secret_name(name: str) -> bool:
    """Does a variable name look like it holds a credential?"""
    if _NOT_SECRET_NAME.search(name):
        return False
    return bool(_SECRET_NAME.search(name))


def url_passwords(text: str) -> list[str]:
    """Passwords embedded in URLs/DSNs (``postgresql://u:pw@h/db``) and ``password=...`` pairs."""
    out = [m.group("pw") for m in _URL_CRED.finditer(text)]
    out += [_unquote(m.group(3)) for m in _KV_CRED.finditer(text)]
    return [p for p in out if p and p != MASK]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def collect_secrets(values: Mapping[str, Any], *, force: bool = False) -> set[str]:
    """Every secret string in a (possibly nested) variable mapping."""
    found: set[str] = set()

    def visit(name: str, value: Any, secret: bool) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                visit(str(k), v, secret or is_secret_name(str(k)))
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(name, v, secret)
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            text = str(value)
            if secret and ("{{" not in text) and len(text) >= 3:
                found.add(text)
            if isinstance(value, str):
                found.update(url_passwords(text))
        elif type(value).__name__ == "VaultValue":
            pass  # decrypted on use; the renderer registers the plaintext then

    for k, v in values.items():
        visit(str(k), v, force or is_secret_name(str(k)))
    return found


class Redactor:
    """Thread-safe set of secret strings; ``redact`` masks them (longest first) in any text."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if isinstance(s, str) and len(s) >= 3 and s != MASK}
        with self._lock:
            if new - self._secrets:
                self._secrets |= new
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __contains__(self, text: str) -> bool:
        return text in self._secrets

    def redact(self, text: str) -> str:
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "://" in text:
            text = _URL_CRED.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{MASK}@", text)
        if "=" in text:
            text = _KV_CRED.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        return text

    def redact_obj(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value; credential-named keys are masked whole."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {
                k: (
                    MASK
                    if is_secret_name(str(k))
                    and isinstance(v, (str, int))
                    and not isinstance(v, bool)
                    and v != ""
                    else self.redact_obj(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.redact_obj(v) for v in value]
        return value
