"""Strict host-key checking against OpenSSH known_hosts files (no AutoAddPolicy, ever).

Reads plain, hashed (``|1|salt|hash``), ``[host]:port``, wildcard (``*``/``?``), negated (``!pat``),
``@revoked`` and ``@cert-authority`` entries, keeping file and line for messages. Unknown keys fail
with the key type, the OpenSSH-style SHA256 fingerprint and the exact command to trust it; a changed
key fails even when new keys are trusted (a possible man-in-the-middle), naming the known_hosts line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import shlex
import threading
from dataclasses import dataclass
from typing import Any

from runbook.errors import HostKeyError
from runbook.model.values import truthy

_WRITE_LOCK = threading.Lock()

# known_hosts key type -> the host-key algorithms that produce it (for ordering the negotiation)
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def fingerprint(blob: bytes) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def short_type(key_type: str) -> str:
    """``ssh-ed25519`` -> ``ed25519`` (the name ``ssh-keyscan -t`` and ``ssh-keygen -t`` take)."""
    if key_type.startswith("ecdsa-"):
        return "ecdsa"
    return key_type.removeprefix("ssh-")


def host_pattern(host: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: ``host`` on port 22, ``[host]:port`` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class Entry:
    path: str
    line: int
    patterns: tuple[str, ...]
    key_type: str
    blob: bytes
    marker: str | None = None  # "@revoked" | "@cert-authority" | None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    def matches(self, name: str) -> bool:
        positive = False
        for pat in self.patterns:
            if pat.startswith("|1|"):
                if _hashed_match(pat, name):
                    positive = True
                continue
            negate = pat.startswith("!")
            if negate:
                pat = pat[1:]
            if _glob(pat).fullmatch(name.lower()):
                if negate:
                    return False
                positive = True
        return positive


def _glob(pattern: str) -> re.Pattern[str]:
    """OpenSSH patterns: only ``*`` and ``?`` are special (``[host]:port`` is literal)."""
    return re.compile(re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", "."))


def _hashed_match(pattern: str, name: str) -> bool:
    try:
        _, _, salt_b64, hash_b64 = pattern.split("|", 3)
        salt = base64.b64decode(salt_b64)
        want = base64.b64decode(hash_b64)
    except (ValueError, binascii.Error):
        return False
    got = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(got, want)


def parse_known_hosts(path: str) -> list[Entry]:
    """Entries of one known_hosts file ([] if it does not exist); malformed lines are skipped."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    out: list[Entry] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = None
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
        if len(fields) < 3:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        out.append(Entry(path, lineno, tuple(fields[0].split(",")), fields[1], blob, marker))
    return out


class KnownHosts:
    """The known_hosts files consulted for one connection; the first is where new keys are recorded."""

    def __init__(self, files: list[str], *, record_to: str | None = None):
        self.files = [os.path.expanduser(f) for f in files]
        self.record_to = os.path.expanduser(record_to) if record_to else (self.files[0] if files else None)
        self.entries: list[Entry] = [e for f in self.files for e in parse_known_hosts(f)]

    def lookup(self, names: list[str]) -> list[Entry]:
        return [e for e in self.entries if any(e.matches(n) for n in names)]

    def preferred_algorithms(self, names: list[str], available: tuple[str, ...]) -> tuple[str, ...]:
        """Host-key algorithms with the ones already known for this host first (like OpenSSH)."""
        known: list[str] = []
        for e in self.lookup(names):
            if e.marker is None:
                for alg in _ALGORITHMS.get(e.key_type, (e.key_type,)):
                    if alg in available and alg not in known:
                        known.append(alg)
        return tuple(known) + tuple(a for a in available if a not in known)

    def verify(
        self,
        *,
        host: str,
        names: list[str],
        key_type: str,
        blob: bytes,
        trust_new: bool,
        hostname: str,
        port: int,
        jump: str | None = None,
    ) -> None:
        """Accept the key, record it (trust_new and unknown host), or raise HostKeyError."""
        fp = fingerprint(blob)
        entries = self.lookup(names)
        for e in entries:
            if e.marker == "@revoked" and e.blob == blob:
                raise HostKeyError(
                    f"host {host}: the {key_type} host key {fp} presented by {names[0]} is marked "
                    f"@revoked in {e.path}:{e.line}; refusing to connect",
                    hint="the key was revoked on purpose: find out why before touching this host",
                )
        plain = [e for e in entries if e.marker is None]
        if any(e.key_type == key_type and e.blob == blob for e in plain):
            return
        if plain:
            same_type = [e for e in plain if e.key_type == key_type]
            old = same_type[0] if same_type else plain[0]
            what = (
                f"{old.path}:{old.line} has {old.key_type} {old.fingerprint}"
                if same_type
                else f"known_hosts only has {old.key_type} {old.fingerprint} for it ({old.path}:{old.line})"
            )
            raise HostKeyError(
                f"host {host}: HOST KEY CHANGED for {names[0]}: the server presents {key_type} {fp}, "
                f"but {what}. Someone could be eavesdropping on you right now (possible "
                f"man-in-the-middle attack), or the host key was just changed; not connecting "
                f"(a changed key is never accepted automatically, not even with --trust-new-hosts)",
                hint=f"verify the new key out of band (on the host: ssh-keygen -lf "
                f"/etc/ssh/ssh_host_{short_type(key_type)}_key.pub); if it is legitimate, remove the old "
                f"entry with: ssh-keygen -R {shlex.quote(names[0])} -f {shlex.quote(old.path)}",
            )
        if trust_new and self.record_to:
            self.record(names[0], key_type, blob)
            return
        target = self.record_to or "~/.ssh/known_hosts"
        raise HostKeyError(
            f"host {host}: unknown host key for {names[0]}: {key_type} {fp} is not in "
            f"{', '.join(self.files) or 'any known_hosts file'} (strict host key checking)",
            hint=f"check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_"
            f"{short_type(key_type)}_key.pub), then trust it with: "
            f"{trust_command(hostname, port, key_type, target, jump)}   "
            f"(or rerun with --trust-new-hosts to record new keys)",
        )

    def record(self, name: str, key_type: str, blob: bytes) -> None:
        assert self.record_to is not None
        line = f"{name} {key_type} {base64.b64encode(blob).decode()}\n"
        with _WRITE_LOCK:
            directory = os.path.dirname(self.record_to) or "."
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(self.record_to, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size > 0:
                    with open(self.record_to, "rb") as fh:
                        fh.seek(-1, os.SEEK_END)
                        if fh.read(1) != b"\n":
                            line = "\n" + line
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        self.entries.append(Entry(self.record_to, -1, (name,), key_type, blob))


def trust_command(hostname: str, port: int, key_type: str, known_hosts: str, jump: str | None = None) -> str:
    """The command a user runs to fetch and trust this host's key (through the jump host if any)."""
    kh = shlex.quote(known_hosts)
    if jump:
        algs = ",".join(_ALGORITHMS.get(key_type, (key_type,)))
        return (
            f"ssh -J {shlex.quote(jump)} -p {port} -o HostKeyAlgorithms={algs} "
            f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={kh} {shlex.quote(hostname)} true"
        )
    port_arg = f"-p {port} " if port != 22 else ""
    return f"ssh-keyscan {port_arg}-t {short_type(key_type)} {shlex.quote(hostname)} >> {kh}"


def trust_new_from_vars(hostvars: Any) -> bool:
    return truthy((hostvars or {}).get("runbook_trust_new_hosts"))
