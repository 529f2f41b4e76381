"""Persistent caches of compiled code, so that a check run at every commit or by an editor does not
compile the same code again in every process: the code Jinja compiles for a template, and the
methods ``dataclasses`` generates for a class.

A template's entry is the marshalled code object the sandboxed environment's ``compile`` produced
for one template source (never a rendered value, never a variable), keyed by the sha256 of that
source and of everything that shapes the generated code (jinja2's, runbook's and Python's versions,
the environment's class, options, filter and test names, runbook's code generator and lexer: the
caller's ``fingerprint``). Templates still render in the sandbox: the code is what the sandbox
would compile, handed to ``Template.from_code`` as ``Environment.from_string`` does.

Where: ``$XDG_CACHE_HOME/runbook/code`` (else ``~/.cache/runbook/code``), made 0700 (and
``runbook`` too); files are written 0600 to a temporary name and renamed. A file is used only when
it is a regular file of this user, writable by nobody else, in a directory of this user writable by
nobody else, and holds this exact key and a matching sha256 of its content; anything else
(missing, torn, corrupt, foreign, too open) is compiled again. ``RUNBOOK_CODE_CACHE=off`` turns
both caches off; an unwritable or missing home only leaves them unused.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import sys
import threading
from types import CodeType
from typing import Any

MAGIC = b"RBJINJA1"  # then the key, sha256 of the payload, the payload
OFF_VALUES = {"0", "off", "no", "false"}

_lock = threading.Lock()
_state: dict[str, str | None] = {}  # "dir": the directory in use, None: no cache


def _private(st: os.stat_result) -> bool:
    """This user's, and nobody else may write it."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _find_directory() -> str | None:
    if os.environ.get("RUNBOOK_CODE_CACHE", "").strip().lower() in OFF_VALUES:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        home = os.environ.get("HOME") or ""
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    path = os.path.join(base, "runbook", "code")
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


def _read_private(path: str) -> bytes | None:
    """The file's bytes if it is a regular file (not a symlink) of this user that nobody else may
    write, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _private(st) or st.st_size > 16 * 1024 * 1024:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def _write_private(final: str, data: bytes) -> None:
    """``data`` as ``final`` (0600), written to a temporary name and renamed; a failure leaves
    nothing behind."""
    tmp = f"{final}.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, final)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _unpack(data: bytes | None, magic: bytes, digest: bytes) -> object:
    """The marshalled value of an entry (``magic``, ``digest``, sha256 of the payload, payload), or
    None when any part does not match."""
    head = len(magic) + 64
    if data is None or len(data) <= head or data[: len(magic)] != magic:
        return None
    if data[len(magic) : len(magic) + 32] != digest:
        return None
    payload = data[head:]
    if hashlib.sha256(payload).digest() != data[len(magic) + 32 : head]:
        return None
    try:
        return marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None


def _pack(magic: bytes, digest: bytes, value: object) -> bytes | None:
    try:
        payload = marshal.dumps(value)
    except ValueError:
        return None
    return magic + digest + hashlib.sha256(payload).digest() + payload


def feed_code(h: Any, code: CodeType) -> None:
    """Feed what ``code`` does into the hash ``h``: its bytecode, names, argument counts and flags,
    and its constants (nested code alike). The same for the same code in any process: not
    ``marshal.dumps``, whose output marks an object shared when other references to it exist (a
    constant another object also holds), and not the order of a frozenset's members."""
    h.update(code.co_code)
    h.update(
        repr(
            (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars, code.co_argcount,
             code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags, code.co_name)
        ).encode("utf-8", "backslashreplace")
    )  # fmt: skip
    for const in code.co_consts:
        _feed_const(h, const)


def _feed_const(h: Any, const: object) -> None:
    if isinstance(const, CodeType):
        h.update(b"c")
        feed_code(h, const)
    elif isinstance(const, tuple):
        h.update(b"t%d" % len(const))
        for item in const:
            _feed_const(h, item)
    elif isinstance(const, frozenset):
        h.update(b"f" + repr(sorted(repr(item) for item in const)).encode("utf-8", "backslashreplace"))
    else:
        h.update(b"v" + repr((type(const).__name__, const)).encode("utf-8", "backslashreplace"))


def load(fingerprint: bytes, source: str) -> CodeType | None:
    """The cached code for ``source``, or None (not cached, or not to be trusted)."""
    where = directory()
    if where is None:
        return None
    digest = key(fingerprint, source)
    code = _unpack(_read_private(_path(where, digest)), MAGIC, digest)
    return code if isinstance(code, CodeType) else None


def store(fingerprint: bytes, source: str, code: CodeType) -> None:
    """Keep ``code`` (what the environment compiled for ``source``) for the next process; any
    failure only leaves it uncached."""
    where = directory()
    if where is None:
        return
    digest = key(fingerprint, source)
    data = _pack(MAGIC, digest, code)
    if data is not None:
        _write_private(_path(where, digest), data)


# --- the methods dataclasses generate -----------------------------------------------------------
#
# ``@dataclass`` writes the source of each class's methods (__init__, __repr__, __eq__, __hash__,
# a frozen class's __setattr__/__delattr__) and compiles it with ``exec``: ~1.5 ms per class here,
# for the ~50-70 classes a command defines at start-up the largest part of its own start. The CLI
# lets the ``dataclasses`` module find, instead of the built-in ``exec``, one that runs the code
# compiled from the same source text (exactly as ``exec`` compiles it: same file name "<string>",
# no inherited flags, same globals and locals), kept in one table file beside the templates'.

DC_MAGIC = b"RBDATAC2"  # 2: each entry kept marshalled until a class asks for it
MAX_TABLE = 4096  # source texts; a full table (old versions' classes) is started again

# sha256 of a source text -> its code: as read from the table (marshalled: a command uses only the
# classes it defines, ~50 of the table's hundreds) or once loaded or compiled here
_table: dict[bytes, CodeType | bytes] = {}
_dirty: list[bool] = [False]


def _table_path(where: str) -> str:
    # the format is in the name: two runbook versions on one machine keep two tables, not one
    # each of them keeps replacing with its own
    tag = hashlib.sha256(f"{sys.version}|{sys.implementation.cache_tag}|{DC_MAGIC!r}".encode()).hexdigest()[:16]
    return os.path.join(where, f"dataclasses-{tag}.code")


def _table_key() -> bytes:
    return hashlib.sha256(f"dataclasses|{sys.version}|{sys.implementation.cache_tag}".encode()).digest()


def _cached_exec(source: Any, globals: Any = None, locals: Any = None, /) -> Any:
    """``exec(source, globals, locals)`` for the dataclasses module: a text is run as the code
    compiled from it (compiled now, or by an earlier process)."""
    if globals is None:  # as exec: the calling frame's namespaces
        frame = sys._getframe(1)
        globals, locals = frame.f_globals, (frame.f_locals if locals is None else locals)
    if not isinstance(source, str):
        return exec(source, globals, locals)
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).digest()
    code = _table.get(digest)
    if isinstance(code, bytes):  # read from the table, not used yet in this process
        try:
            code = marshal.loads(code)
        except (EOFError, ValueError, TypeError):
            code = None
        if isinstance(code, CodeType):
            _table[digest] = code
        else:
            code = None
    if code is None:
        code = compile(source, "<string>", "exec", dont_inherit=True)
        with _lock:
            if len(_table) < MAX_TABLE:
                _table[digest] = code
                _dirty[0] = True
    return exec(code, globals, locals)


def install_dataclass_cache() -> bool:
    """Let the dataclasses module run its generated methods' code from the table (read now; new
    entries written at exit). Nothing happens without a cache directory, or when something else
    already gave the module an ``exec``. True: installed."""
    import dataclasses

    if "exec" in vars(dataclasses):
        return vars(dataclasses)["exec"] is _cached_exec
    where = directory()
    if where is None:
        return False
    table = _unpack(_read_private(_table_path(where)), DC_MAGIC, _table_key())
    if isinstance(table, dict) and len(table) < MAX_TABLE:
        _table.update(
            (k, v) for k, v in table.items() if isinstance(k, bytes) and len(k) == 32 and isinstance(v, bytes)
        )
    import atexit

    atexit.register(save_dataclass_cache)
    dataclasses.exec = _cached_exec  # type: ignore[attr-defined]
    return True


def uninstall_dataclass_cache() -> None:
    import dataclasses

    if vars(dataclasses).get("exec") is _cached_exec:
        del dataclasses.exec  # type: ignore[attr-defined]


def save_dataclass_cache() -> None:
    """Write the table if this process added to it."""
    if not _dirty[0]:
        return
    where = directory()
    if where is None:
        return
    with _lock:
        entries = {k: v if isinstance(v, bytes) else marshal.dumps(v) for k, v in _table.items()}
        data = _pack(DC_MAGIC, _table_key(), entries)
        _dirty[0] = False
    if data is not None:
        _write_private(_table_path(where), data)
