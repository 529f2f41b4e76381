"""Reading files an attacker may have planted: never hang, never read without bound.

The audit directory, an allowed-signers file, a bundle or a head file can be anything by the time it is
read: a FIFO (``open`` would block until a writer appears), ``/dev/zero`` or a symlink to it (``read``
never ends), a directory, a 100 GB sparse file. Every audit reader opens through ``open_regular``:
``O_NONBLOCK`` so opening a FIFO returns at once, then ``fstat`` on the *opened* descriptor (no window
between checking and opening), refusing anything but a regular file no larger than its limit. Reads are
bounded by that limit too (a file that grows while read is refused), and lines by ``MAX_LINE``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from runbook.errors import AuditError, Location

MAX_RUN_FILE = 1 << 30  # a run file (or bundle member) larger than this is not read
MAX_LINE = 32 << 20  # one audit record; longer lines are reported, never held in memory
MAX_SMALL = 1 << 20  # allowed signers, keys, head files


class UnsafeFile(AuditError):
    """A file the audit tools refuse to read (not a regular file, or too large): a usage error."""

    exit_code = 2


class LineTooLong(bytes):
    """Marks a line longer than the limit (its first bytes only; the rest was skipped unread)."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _size(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} bytes"


def open_regular(path: str | os.PathLike[str], what: str, limit: int) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file of at most ``limit`` bytes (symlinks are
    followed, but judged by what they point to); ``UnsafeFile`` otherwise, ``OSError`` if it cannot be
    opened at all."""
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket (or a FIFO on some systems)
            with contextlib.suppress(OSError):
                mode = os.stat(path).st_mode
                if not stat.S_ISREG(mode):
                    raise UnsafeFile(
                        f"{what} is {_kind(mode)}, not a regular file: refused", location=Location(str(path))
                    ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(
                f"{what} is {_kind(st.st_mode)}, not a regular file: refused",
                location=Location(str(path)),
                hint="point it at a regular file (a FIFO or device would block or never end)",
            )
        if st.st_size > limit:
            raise UnsafeFile(
                f"{what} is {_size(st.st_size)}, larger than the {_size(limit)} limit: refused",
                location=Location(str(path)),
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], what: str, limit: int = MAX_SMALL) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes (see ``open_regular``)."""
    with open_regular(path, what, limit) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFile(
            f"{what} grew past the {_size(limit)} limit while being read: refused",
            location=Location(str(path)),
        )
    return data


def bounded_lines(fh: BinaryIO, limit: int = MAX_LINE) -> Iterator[bytes]:
    """The lines of ``fh`` (with their newline), each at most ``limit`` bytes; a longer line comes as a
    ``LineTooLong`` holding its first bytes, the rest skipped without being kept."""
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit:
            yield line
            continue
        head = line[:256]
        while not line.endswith(b"\n"):
            line = fh.readline(1 << 20)
            if not line:
                break
        yield LineTooLong(head)


def is_regular(path: Path) -> bool:
    """Whether ``path`` (not following symlinks) is a regular file."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False
