"""Ed25519 signing keys and the allowed-signers trust file.

Key ID: ``ed25519:SHA256:<base64, unpadded>`` of SHA-256 over the key's OpenSSH public-key blob (the
wire encoding ``string "ssh-ed25519" || string <32-byte key>``), i.e. exactly the fingerprint
``ssh-keygen -lf key.pub`` prints, so an auditor can compare it with the operator's published key.

Signing keys: an unencrypted (or ``RUNBOOK_AUDIT_KEY_PASSPHRASE``-encrypted) PKCS#8 PEM or OpenSSH
ed25519 private key, mode 0600 (group/world-readable keys are refused, like ssh does).
``runbook audit keygen`` writes the OpenSSH format, so the same key also works with ``ssh-keygen -Y``.

Both are read through ``safeio``: anything but a regular file of at most 1 MiB (a FIFO, ``/dev/zero``,
a directory, a huge file, or a symlink to one) is refused at once with exit 2, never read.

Allowed signers: one public key per line, OpenSSH format, optionally prefixed by principals and
options as in ssh's ``allowed_signers`` (``alice@example.com ssh-ed25519 AAAA... comment``); ``#``
comments and blank lines are ignored; keys of other types are ignored (they cannot sign audit seals).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import os
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from runbook.audit.paths import KEY_ENV, SIGNERS_ENV, config_dir, default_allowed_signers, default_key_path  # noqa: F401
from runbook.audit.safeio import MAX_SMALL, open_regular, read_regular
from runbook.errors import AuditError, Location

KEY_TYPE = "ssh-ed25519"
PASSPHRASE_ENV = "RUNBOOK_AUDIT_KEY_PASSPHRASE"


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _blob(public_key: Ed25519PublicKey) -> bytes:
    t = KEY_TYPE.encode()
    raw = _raw(public_key)
    return struct.pack(">I", len(t)) + t + struct.pack(">I", len(raw)) + raw


def key_id(public_key: Ed25519PublicKey) -> str:
    digest = hashlib.sha256(_blob(public_key)).digest()
    return "ed25519:SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def public_line(public_key: Ed25519PublicKey, comment: str = "") -> str:
    line = f"{KEY_TYPE} {base64.b64encode(_blob(public_key)).decode()}"
    return f"{line} {comment}".rstrip()


def parse_public_line(text: str) -> Ed25519PublicKey:
    """``ssh-ed25519 AAAA... [comment]`` -> key (raises ValueError)."""
    parts = text.split()
    if len(parts) < 2 or parts[0] != KEY_TYPE:
        raise ValueError("not an ssh-ed25519 public key")
    key = serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an ed25519 key")
    return key


@dataclass(frozen=True)
class Signer:
    """A loaded private key: signs seal payloads."""

    private_key: Ed25519PrivateKey
    key_id: str
    public_line: str
    path: str = ""

    @classmethod
    def from_private_key(cls, key: Ed25519PrivateKey, comment: str = "", path: str = "") -> Signer:
        pub = key.public_key()
        return cls(key, key_id(pub), public_line(pub, comment), path)

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self.private_key.sign(payload)).decode()


def load_signing_key(path: str | os.PathLike[str], passphrase: str | None = None) -> Signer:
    """Load an Ed25519 private key (PKCS#8 PEM or OpenSSH); clear AuditError on any problem."""
    p = Path(path).expanduser()
    loc = Location(str(p))
    try:
        with open_regular(p, "audit signing key", MAX_SMALL) as fh:
            st = os.fstat(fh.fileno())
            data = fh.read(MAX_SMALL + 1)
    except OSError as exc:
        raise AuditError(
            f"cannot read audit signing key: {exc.strerror}",
            location=loc,
            hint="create one with `runbook audit keygen`, or run without a signing key (unsigned audit)",
        )
    if st.st_mode & 0o077 and hasattr(os, "getuid"):
        raise AuditError(
            f"audit signing key is accessible by other users (mode {st.st_mode & 0o777:04o})",
            location=loc,
            hint=f"chmod 600 {p}",
        )
    if passphrase is None:
        passphrase = os.environ.get(PASSPHRASE_ENV)
    pw = passphrase.encode() if passphrase else None
    try:
        if b"BEGIN OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=pw)
        else:
            key = serialization.load_pem_private_key(data, password=pw)
    except TypeError:
        raise AuditError(
            "audit signing key is encrypted and no passphrase was given",
            location=loc,
            hint=f"set {PASSPHRASE_ENV}, or use an unencrypted key kept at mode 0600",
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise AuditError(
            f"not a usable private key ({exc})",
            location=loc,
            hint="expected an OpenSSH or PKCS#8 PEM ed25519 private key (`runbook audit keygen`)",
        )
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(
            f"audit signing key must be ed25519, not {type(key).__name__.replace('PrivateKey', '')}",
            location=loc,
            hint="generate one with `runbook audit keygen` or `ssh-keygen -t ed25519`",
        )
    return Signer.from_private_key(key, path=str(p))


def default_comment() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def generate_key(out: str | os.PathLike[str], comment: str | None = None) -> Signer:
    """Write a new key: ``out`` (OpenSSH private key, 0600, O_EXCL) and ``out.pub``; never overwrite."""
    path = Path(out).expanduser()
    pub_path = Path(str(path) + ".pub")
    for p in (path, pub_path):
        if p.exists() or p.is_symlink():
            raise AuditError(
                "refusing to overwrite an existing key file",
                location=Location(str(p)),
                hint="choose another --out path, or remove the old key deliberately first",
            )
    comment = comment if comment is not None else default_comment()
    key = Ed25519PrivateKey.generate()
    signer = Signer.from_private_key(key, comment, str(path))
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
            fh.flush()
            os.fsync(fh.fileno())
        fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(signer.public_line + "\n")
    except FileExistsError as exc:
        raise AuditError(
            "refusing to overwrite an existing key file", location=Location(str(exc.filename or path))
        )
    except OSError as exc:
        raise AuditError(f"cannot write key: {exc.strerror}", location=Location(str(exc.filename or path)))
    return signer


def trust_locally(signer: Signer, principal: str, path: str | os.PathLike[str] | None = None) -> bool:
    """Trust on first use, on the machine that made the key: add ``principal ssh-ed25519 AAAA...`` to
    the local allowed_signers file (default ``default_allowed_signers()``; created 0644 in a 0700
    directory). False when the key is already in it. The file is read like any allowed signers
    file first (a FIFO, a huge file, a broken line: AuditError), and appended to, never rewritten."""
    p = Path(path).expanduser() if path is not None else default_allowed_signers()
    text = ""
    if p.exists() or p.is_symlink():
        current = AllowedSigners.load(p)
        if signer.key_id in current:
            return False
        text = read_regular(p, "allowed signers file", MAX_SMALL).decode("utf-8")
        p = p.resolve()  # a symlinked file (dotfiles) is appended to where it really is
    line = f"{principal} {' '.join(signer.public_line.split()[:2])}\n"
    if text and not text.endswith("\n"):
        line = "\n" + line
    try:
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise AuditError(
            f"cannot add the key to the allowed signers file: {exc.strerror}",
            location=Location(str(p)),
            hint="add the line printed below to it by hand, or pass --no-trust",
        )
    return True


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: Ed25519PublicKey
    principals: tuple[str, ...]
    source: str

    def verify(self, signature_b64: str, payload: bytes) -> bool:
        try:
            sig = base64.b64decode(signature_b64, validate=True)
            self.public_key.verify(sig, payload)
            return True
        except (InvalidSignature, binascii.Error, ValueError, TypeError):
            return False


@dataclass
class AllowedSigners:
    keys: dict[str, TrustedKey] = field(default_factory=dict)
    source: str = ""

    def __contains__(self, kid: object) -> bool:
        return kid in self.keys

    def get(self, kid: str) -> TrustedKey | None:
        return self.keys.get(kid)

    def add(self, key: Ed25519PublicKey, principals: tuple[str, ...] = (), source: str = "") -> str:
        kid = key_id(key)
        self.keys[kid] = TrustedKey(kid, key, principals, source)
        return kid

    def lines(self) -> list[str]:
        return [
            f"{','.join(k.principals) + ' ' if k.principals else ''}{public_line(k.public_key)}"
            for k in self.keys.values()
        ]

    @classmethod
    def parse(cls, text: str, source: str = "<allowed signers>") -> AllowedSigners:
        out = cls(source=source)
        for lineno, line in enumerate(text.splitlines(), 1):
            tokens = line.strip().split()
            if not tokens or tokens[0].startswith("#"):
                continue
            idx = next((i for i, t in enumerate(tokens) if t == KEY_TYPE), None)
            if idx is None:
                continue  # other key types (rsa, ecdsa) cannot sign audit seals
            if idx + 1 >= len(tokens):
                raise AuditError(
                    "ssh-ed25519 key without key data", location=Location(source, lineno), hint=_HINT
                )
            opts = [t for t in tokens[:idx] if "=" in t or t == "cert-authority"]
            if "cert-authority" in opts:
                continue
            principals = tuple(p for t in tokens[:idx] if t not in opts for p in t.split(",") if p)
            try:
                key = parse_public_line(f"{KEY_TYPE} {tokens[idx + 1]}")
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise AuditError(
                    f"unreadable ssh-ed25519 public key ({exc})",
                    location=Location(source, lineno),
                    hint=_HINT,
                )
            out.add(key, principals, f"{source}:{lineno}")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AllowedSigners:
        p = Path(path).expanduser()
        try:
            text = read_regular(p, "allowed signers file", MAX_SMALL).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditError(
                f"cannot read allowed signers file: {getattr(exc, 'strerror', None) or exc}",
                location=Location(str(p)),
                hint=f"pass --allowed-signers FILE or set {SIGNERS_ENV}; "
                "add the line printed by `runbook audit keygen`",
            )
        return cls.parse(text, str(p))


_HINT = "each line: [principal[,principal]] ssh-ed25519 AAAA... [comment] (the .pub file content)"
