"""A persistent cache of the code Jinja compiles for a template, so that a check run at every
commit or by an editor does not lex, parse, generate and compile the same templates again.

An entry is the marshalled code object the sandboxed environment's ``compile`` produced for one
template source (never a rendered value, never a variable), keyed by the sha256 of that source and
of everything that shapes the generated code (jinja2's, runbook's and Python's versions, the
environment's class, options, filter and test names, runbook's code generator and lexer: the
caller's ``fingerprint``). Templates still render in the sandbox: the code is what the sandbox
would compile, handed to ``Template.from_code`` as ``Environment.from_string`` does.

Where: ``$XDG_CACHE_HOME/runbook/templates`` (else ``~/.cache/runbook/templates``), made 0700;
entries are written 0600 to a temporary name and renamed. An entry is used only when its file is a
regular file of this user, writable by nobody else, in a directory of this user writable by nobody
else, and holds this exact key and a matching sha256 of its code; anything else (missing, torn,
corrupt, foreign, too open) is compiled again. ``RUNBOOK_TEMPLATE_CACHE=off`` turns the cache off;
an unwritable or missing home only leaves it unused.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import threading
from types import CodeType

MAGIC = b"RBJINJA1"
_HEAD = len(MAGIC) + 32 + 32  # magic, the key, sha256 of the payload
OFF_VALUES = {"0", "off", "no", "false"}

_lock = threading.Lock()
_state: dict[str, str | None] = {}  # "dir": the directory in use, None: no cache


def _private(st: os.stat_result) -> bool:
    """This user's, and nobody else may write it."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _find_directory() -> str | None:
    if os.environ.get("RUNBOOK_TEMPLATE_CACHE", "").strip().lower() in OFF_VALUES:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        home = os.environ.get("HOME") or ""
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    path = os.path.join(base, "runbook", "templates")
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)  # ours: 0700 as well
        os.makedirs(path, mode=0o700, exist_ok=True)
        for d in (os.path.dirname(path), path):
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode) or not _private(st):
                return None
    except OSError:
        return None
    return path


def directory() -> str | None:
    """The cache directory this process uses (decided once), or None: no cache."""
    if "dir" not in _state:
        with _lock:
            if "dir" not in _state:
                _state["dir"] = _find_directory()
    return _state["dir"]


def reset() -> None:
    """Decide the directory again at the next use (the environment changed)."""
    with _lock:
        _state.clear()


def key(fingerprint: bytes, source: str) -> bytes:
    h = hashlib.sha256(fingerprint)
    h.update(b"\0")
    h.update(source.encode("utf-8", "surrogatepass"))
    return h.digest()


def _path(where: str, digest: bytes) -> str:
    return os.path.join(where, digest.hex() + ".code")


def load(fingerprint: bytes, source: str) -> CodeType | None:
    """The cached code for ``source``, or None (not cached, or not to be trusted)."""
    where = directory()
    if where is None:
        return None
    digest = key(fingerprint, source)
    try:
        fd = os.open(_path(where, digest), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _private(st) or st.st_size > 16 * 1024 * 1024:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) <= _HEAD or data[: len(MAGIC)] != MAGIC or data[len(MAGIC) : len(MAGIC) + 32] != digest:
        return None
    payload = data[_HEAD:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC) + 32 : _HEAD]:
        return None
    try:
        code = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def store(fingerprint: bytes, source: str, code: CodeType) -> None:
    """Keep ``code`` (what the environment compiled for ``source``) for the next process; any
    failure only leaves it uncached."""
    where = directory()
    if where is None:
        return
    digest = key(fingerprint, source)
    try:
        payload = marshal.dumps(code)
    except ValueError:
        return
    final = _path(where, digest)
    tmp = f"{final}.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + digest + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, final)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
