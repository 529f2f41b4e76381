"""Secrets: known by their origin, found at render time, redacted everywhere output leaves the engine.

A value is secret when it comes from Ansible Vault (a ``!vault`` string, or any value of a
vault-encrypted file: group_vars, host_vars, ``-e @file``), when its variable is declared secret (the
runbook's ``secrets:`` list, ``--secret NAME``), when its variable name looks like a credential
(*PASSWORD*, *TOKEN*, *SECRET*, *KEY*, *PASS*, *CREDENTIAL*, *AUTH*), when it is the password of a
URL/DSN (``scheme://user:password@``, ``password=...``) or the value of a credential header
(Authorization, Cookie, X-API-Key, *-Token), when a ``no_log`` step produced it, or when a template
computed it from any of these. The Redactor replaces every occurrence of every known secret string
(and the password part of any URL with credentials) with ``***``.

Every scan here is linear in the length of the text (no regular expression that can backtrack over a
long run of characters): a 2 MB value is redacted in milliseconds.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from runbook.model.inventory_view import InventoryView
from runbook.model.lazyre import lazy_re

MASK = "***"
MIN_SECRET = 3  # shorter strings are not registered: masking "ab" everywhere would hide everything

# (names are short identifiers: these run on names only, never on values)
_SECRET_NAME = lazy_re(
    r"(pass(word|wd|phrase)?|token|secret|(?<!public_)key|credential|private|api_?key|auth|cookie|"
    r"(^|_)(pwd|pat|bearer)($|_))",
    re.I,
)
_NOT_SECRET_NAME = lazy_re(
    r"(^|_)(key_id|keyid|key_file|keyfile|key_path|public_key|host_key_checking|keys?_dir|pubkey|key_type|"
    r"ssh_private_key_file|private_key_file|keyring)($|_)|_file$|_path$|_dir$",
    re.I,
)
_SECRET_HEADER = lazy_re(
    r"^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|apikey|x-auth.*|.*-token|"
    r".*[-_]api[-_]?key|.*secret.*|.*password.*|private-token)$",
    re.I,
)
# keywords of ``key=value`` credential pairs in free text (a literal alternation: no backtracking)
_KV_WORD = lazy_re(r"password|passwd|pwd|passphrase|token|secret|api_?key", re.I)
# the password may hold spaces (an unencoded DSN: libpq refuses it, and its error repeats it), never a
# newline, '@' or '/': each attempt stops at the next '/', and every "://" holds one (linear)
_URL_CRED = lazy_re(r"://[^:/@\s]*:([^@/\s](?:[^@/\n]*[^@/\s])?)@")
# a quoted value: libpq's '...' with \' and \\ escapes; an unterminated quote runs to the end of the
# line (disjoint alternatives: linear)
_QUOTED = {"'": lazy_re(r"(?:[^'\\\n]|\\.)*"), '"': lazy_re(r'(?:[^"\\\n]|\\.)*')}
_PASSWORD_WORDS = ("password", "passwd", "pwd")
_WORD_REST = lazy_re(r"\w*")
_BLANKS = lazy_re(r"[ \t]*")
_VALUE = lazy_re(r"[^\s;&,'\"]*")


def is_secret_name(name: str) -> bool:
    """Does a variable name look like it holds a credential?"""
    if len(name) > 200:
        return False
    if _NOT_SECRET_NAME.search(name):
        return False
    return bool(_SECRET_NAME.search(name))


def is_secret_header(name: str) -> bool:
    """Does an HTTP header carry a credential (Authorization, Cookie, X-API-Key, *-Token ...)?"""
    return len(name) <= 200 and bool(_SECRET_HEADER.match(name.strip()))


def url_credentials(text: str) -> list[tuple[int, int]]:
    """(start, end) of each password in ``scheme://user:password@`` inside ``text``. Linear: every
    part of the pattern stops at a character the next part starts with (no backtracking), and each
    attempt stops at the next ``/``."""
    return [m.span(1) for m in _URL_CRED.finditer(text)]


def kv_credentials(text: str) -> list[tuple[int, int]]:
    """(start, end) of each value of ``password=VALUE``-like pairs (``PGPASSWORD=x``, ``api_key: x``,
    ``?access_token=x``, quoted values too)."""
    return [(a, b) for a, b, _ in _kv_pairs(text)]


def _kv_pairs(text: str) -> list[tuple[int, int, str]]:
    """(start, end, keyword) of each credential pair's value. Linear: the keyword is found by a
    literal alternation, then the rest of its word, the separator and the value are each one
    character class matched once (nothing can backtrack)."""
    spans: list[tuple[int, int, str]] = []
    n = len(text)
    pos = 0
    while True:
        m = _KV_WORD.search(text, pos)
        if m is None:
            return spans
        k = _WORD_REST.match(text, m.end()).end()  # type: ignore[union-attr]
        if k < n and text[k] in "\"'":
            k += 1
        k = _BLANKS.match(text, k).end()  # type: ignore[union-attr]
        if k >= n or text[k] not in "=:" or (text[k] == ":" and text[k + 1 : k + 3] == "//"):
            pos = max(k, m.end())
            continue
        k = _BLANKS.match(text, k + 1).end()  # type: ignore[union-attr]
        if k < n and text[k] in "\"'":
            start = k + 1
            end = _QUOTED[text[k]].match(text, start).end()  # type: ignore[union-attr]
        else:
            start = k
            end = _VALUE.match(text, k).end()  # type: ignore[union-attr]
        if end > start and text[start:end] != MASK:
            spans.append((start, end, m.group(0).lower()))
        pos = max(end, k)


def url_passwords(text: str) -> list[str]:
    """Passwords embedded in URLs/DSNs (``postgresql://u:pw@h/db``) and ``password=...`` pairs."""
    out = [text[a:b] for a, b in url_credentials(text)] if "://" in text else []
    if "=" in text:  # only password/passwd/pwd=VALUE pairs teach a secret (``token: x`` in free
        # text is masked when shown, but not learnt as a secret everywhere)
        for a, b, word in _kv_pairs(text):
            if word in _PASSWORD_WORDS:
                value = text[a:b]
                out.append(value)
                if "\\" in value:  # what the server sees (and may repeat): the escapes undone
                    out.append(re.sub(r"\\(.)", r"\1", value))
    return [p for p in out if p and p != MASK]


def _masked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with the union of the spans replaced by one ``***`` each (overlaps merged)."""
    ordered = sorted(spans)
    if not ordered:
        return text
    out: list[str] = []
    last = 0
    cur_start, cur_end = ordered[0]
    for start, end in ordered[1:]:
        if start <= cur_end:
            cur_end = max(cur_end, end)
            continue
        out += [text[last:cur_start], MASK]
        last = cur_end
        cur_start, cur_end = start, end
    out += [text[last:cur_start], MASK, text[cur_end:]]
    return "".join(out)


def mask_credentials(text: str) -> str:
    """Mask URL passwords and ``password=VALUE``-style pairs in free text (no known secrets needed)."""
    spans: list[tuple[int, int]] = []
    if "://" in text and "@" in text:
        spans += url_credentials(text)
    if "=" in text or ":" in text:
        spans += kv_credentials(text)
    return _masked(text, spans)


def leaves(value: Any) -> Iterable[str]:
    """Every scalar inside a (nested) value, as text: what a secret-origin value contributes.
    (Plain data only: a lazy mapping such as hostvars is not walked.)"""
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield str(value)


def collect_secrets(
    values: Mapping[str, Any], *, force: bool = False, names: Iterable[str] = ()
) -> set[str]:
    """Every secret string in a (possibly nested) variable mapping: values under a credential-like or
    declared (``names``) name, every value when ``force``, and passwords inside URLs/DSNs."""
    declared = set(names)
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
            if secret and ("{{" not in text) and len(text) >= MIN_SECRET:
                found.add(text)
            if isinstance(value, str):
                found.update(url_passwords(text))
        elif type(value).__name__ == "VaultValue":
            plain = value.plaintext()  # known before its use (None: no vault password, yet)
            if plain is not None and len(plain) >= MIN_SECRET:
                found.add(plain)

    for k, v in values.items():
        visit(str(k), v, force or str(k) in declared or is_secret_name(str(k)))
    return found


def variants(secret: str) -> set[str]:
    """A secret as it may be printed: itself, JSON-escaped, shell-quoted (``'it'"'"'s'``),
    percent-encoded, and each line of a multi-line one (output is masked line by line)."""
    out = {secret}
    if len(secret) < MIN_SECRET:
        return out
    if not secret.isalnum():
        out.add(json.dumps(secret)[1:-1])
        out.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        out.add(shlex.quote(secret))
        out.add(quote(secret, safe=""))
    if "\n" in secret:
        out.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 6)
    return out


_MEMO_TEXT = 256  # Redactor.redact remembers the results for strings up to this long
_MEMO_SIZE = 4096  # ... and at most this many (then starts again)


class Redactor:
    """Thread-safe registry of secret strings and declared secret variable names; ``redact`` masks
    every occurrence of every secret (overlapping ones as one ``***``) in any text, in linear time
    per secret (``str.find``), plus URL passwords and ``password=`` pairs."""

    def __init__(self, secrets: Iterable[str] = (), names: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        # the secrets, longest first, and the shortest one's length: replaced (never changed) as one
        # tuple when a secret is added, so a reader sees both from the same moment
        self._table: tuple[tuple[str, ...], int] = ((), 1 << 30)
        # text -> (the table it was redacted with, the result): the same short strings (host, step
        # and phase names, outcomes) are redacted at every event; a result made with an older table
        # (a secret was added since) is never used
        self._memo: dict[str, tuple[tuple[tuple[str, ...], int], str]] = {}
        self.names: frozenset[str] = frozenset()
        self.add(secrets)
        self.declare(names)

    def declare(self, names: Iterable[str]) -> None:
        """Variable names that hold secrets whatever their value (``secrets:``, ``--secret``)."""
        with self._lock:
            self.names = self.names | {str(n) for n in names}

    def add(self, secrets: Iterable[str]) -> None:
        new = {v for s in secrets if isinstance(s, str) for v in variants(s)}
        new = {s for s in new if len(s) >= MIN_SECRET and s != MASK}
        with self._lock:
            if new - self._secrets:
                self._secrets |= new
                ordered = tuple(sorted(self._secrets, key=len, reverse=True))
                self._table = (ordered, min(self._table[1], *(len(s) for s in new)))

    def add_value(self, value: Any) -> None:
        """Register every scalar of a secret-origin value (a vault file's, a declared variable's)."""
        self.add(leaves(value))

    def is_secret_var(self, name: str) -> bool:
        return name in self.names or is_secret_name(name)

    def holds(self, value: Any) -> bool:
        """Is this value (or any scalar inside it) a registered secret?"""
        return any(leaf in self._secrets for leaf in leaves(value))

    def __contains__(self, text: str) -> bool:
        return text in self._secrets

    def __bool__(self) -> bool:
        return True

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where known secrets occur in ``text``."""
        return self._spans(text, self._table)

    @staticmethod
    def _spans(text: str, table: tuple[tuple[str, ...], int]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        ordered, shortest = table
        if len(text) < shortest:
            return out
        for secret in ordered:
            if len(secret) > len(text):
                continue
            i = text.find(secret)
            while i >= 0:
                out.append((i, i + len(secret)))
                i = text.find(secret, i + len(secret))
        return out

    def redact(self, text: str) -> str:
        if not text:
            return text
        table = self._table
        short = type(text) is str and len(text) <= _MEMO_TEXT  # a str subclass is never remembered
        if short:
            hit = self._memo.get(text)
            if hit is not None and hit[0] is table:
                return hit[1]
        spans = self._spans(text, table)
        if "://" in text and "@" in text:
            spans += url_credentials(text)
        if "=" in text:  # password=VALUE (a keyword DSN, PGPASSWORD=...): masked wherever it shows
            spans += [(a, b) for a, b, word in _kv_pairs(text) if word in _PASSWORD_WORDS]
        out = _masked(text, spans)
        if short:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[text] = (table, out)
        return out

    def redact_obj(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value; credential-named keys are masked whole."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {
                (self.redact(k) if isinstance(k, str) else k): (
                    MASK
                    if self.is_secret_var(str(k))
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


def register_origins(
    redactor: Redactor,
    *,
    runbook: Any = None,
    inventory: InventoryView | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    declared: Iterable[str] = (),
) -> Redactor:
    """Teach a run's redactor the secrets it can know before anything renders: the declared names
    (the runbook's ``secrets:`` and vault vars_files, ``--secret``, vault ``-e @file``), every value
    of the inventory's vault-encrypted group_vars/host_vars files, and the values of credential-named
    or declared variables in the runbook and -e. (Inline ``!vault`` values register when they are
    decrypted; values computed from secrets when they are rendered.)"""
    redactor.declare([*getattr(runbook, "secrets", ()), *declared])
    names = redactor.names
    if runbook is not None:
        redactor.add(collect_secrets({**runbook.defaults, **runbook.vars}, names=names))
    if extra_vars:
        redactor.add(collect_secrets(dict(extra_vars), names=names))
    for data in inventory.vault_data if inventory is not None else ():
        redactor.add_value(data)
    return redactor
