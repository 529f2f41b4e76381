"""The run's own JSON Lines file, and the directory lock that keeps one writer per chain.

Every record is one ``os.write`` of a whole line to an ``O_APPEND`` descriptor (no user-space
buffer: after SIGKILL everything written is in the kernel); ``sync`` fsyncs. The file is created
with ``O_EXCL`` (mode 0640) and the directory entry is fsynced.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runbook.errors import AuditError, Location


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class JsonlFile:
    """Append-only writer of one run file."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True):
        self.path = Path(path)
        self._fsync = fsync
        self._dirty = False
        try:
            self._fd: int | None = os.open(
                self.path,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0),
                0o640,
            )
        except OSError as exc:
            raise AuditError(f"cannot create audit file: {exc.strerror}", location=Location(str(self.path)))
        if fsync:
            _fsync_dir(self.path.parent)

    def write(self, record: Mapping[str, Any], line: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise AuditError("audit file already closed", location=Location(str(self.path)))
        view = memoryview(line)
        n = os.write(fd, view)  # one write for the whole line, almost always
        if n < len(view):
            start = os.fstat(fd).st_size - n
            try:
                view = view[n:]
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                # disk full half-way through a line: cut the file back to its last whole record, so
                # the next append (after space is freed) does not fuse onto a partial line
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        self._dirty = True

    def dup_fd(self) -> int | None:
        """A duplicate descriptor to fsync without holding the writer's lock (it stays valid if the
        file is closed meanwhile); None when closed or when fsync is off."""
        if self._fd is None or not self._fsync:
            return None
        return os.dup(self._fd)

    def sync(self) -> None:
        if self._fd is not None and self._dirty and self._fsync:
            os.fsync(self._fd)
        self._dirty = False

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = None


class DirectoryLock:
    """Exclusive ``flock`` on ``<dir>/.lock``: one run appends to a directory's chain at a time."""

    def __init__(self, directory: Path):
        self.path = directory / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o640)
        except OSError as exc:  # read-only, full (no inode), not ours
            raise AuditError(
                f"cannot create the audit directory lock: {exc.strerror}", location=Location(str(self.path))
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 32, 0).decode().strip()
            os.close(fd)
            raise AuditError(
                f"audit directory is in use by another runbook process{f' (pid {holder})' if holder else ''}",
                location=Location(str(self.path.parent)),
                hint="runs sharing an audit directory are chained one after another; wait for the other "
                "run to finish, or give this one its own audit directory",
            )
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # a full disk: the lock is not kept half-taken
            os.close(fd)
            raise AuditError(
                f"cannot write the audit directory lock: {exc.strerror}", location=Location(str(self.path))
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None
