"""File operations of the SSH transport: sftp for the login user (atomic temp + posix-rename, mode
set before any byte is written), shell commands when ``become`` needs another user."""

from __future__ import annotations

import errno
import posixpath
import secrets
import shlex
import stat as statmod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from runbook.actions import FileStat
from runbook.actions.commands import Command
from runbook.errors import RunbookError
from runbook.model.become import Become

q = shlex.quote
MISSING, ISDIR = 44, 45  # exit codes of read_script/stat_script
_MISSING, _ISDIR = MISSING, ISDIR


class SSHFiles:
    """An SSH host's file operations (read, stat, atomic write): over SFTP as the login user, through
    sh scripts (``read_script`` ...) when ``become`` asks for another user. Composed into the
    transport, given exactly what it needs of it: the host's name, an SFTP client, the guard that
    turns a lost connection into the transport's error, a way to run a command, who ``become``
    means, the login user's uid, and the (kind, id or name) cache of user and group names."""

    def __init__(
        self,
        host: str,
        *,
        sftp: Callable[[], Any],
        guard: Callable[[str], AbstractContextManager[None]],
        run_raw: Callable[[Command], Any],
        become_user_for: Callable[[bool | Become], str | None],
        remote_uid: Callable[[], int],
        names: dict[tuple[str, object], str | None] | None = None,
    ):
        self.host, self.sftp, self.guard, self.run_raw = host, sftp, guard, run_raw
        self.become_user_for, self.remote_uid = become_user_for, remote_uid
        self.names: dict[tuple[str, object], str | None] = {} if names is None else names

    def _become(self, become: bool | Become) -> bool:
        return self.become_user_for(become) is not None

    def _cmd(self, script: str, *, become: bool | Become, stdin: bytes | None = None):
        command = Command.shell(script, become=bool(become), stdin=stdin)
        raw = self.run_raw(command.as_user(become) if isinstance(become, Become) else command)
        return raw

    def _oserror(self, code: int, what: str, path: str, detail: str = "") -> OSError:
        msg = f"host {self.host}: cannot {what} {path}" + (f": {detail.strip()}" if detail.strip() else "")
        return OSError(code, msg)

    # ------------------------------------------------------------------------------------------ read
    def read_file(self, path: str, *, become: bool | Become = False) -> bytes | None:
        if self._become(become):
            raw = self._cmd(read_script(path), become=become)
            if raw.rc in (_MISSING, _ISDIR):
                return None
            if raw.rc != 0:
                raise self._oserror(errno.EACCES, "read", path, raw.stderr.decode("utf-8", "replace"))
            return raw.stdout
        with self.guard(f"while reading {path}"):
            return self._sftp_read(path)

    def _sftp_read(self, path: str) -> bytes | None:
        sftp = self.sftp()
        try:
            with sftp.open(path, "rb") as fh:
                fh.prefetch()
                return fh.read()
        except OSError as exc:
            try:
                st = sftp.stat(path)
            except OSError:
                if exc.errno == errno.ENOENT or getattr(exc, "errno", None) is None:
                    return None
                raise self._oserror(exc.errno or errno.EIO, "read", path, str(exc)) from None
            if statmod.S_ISDIR(st.st_mode or 0):
                return None
            raise self._oserror(
                exc.errno or errno.EACCES, "read", path, str(exc) or "permission denied"
            ) from None

    # ------------------------------------------------------------------------------------------ stat
    def _names(self, uid: int, gid: int) -> tuple[str | None, str | None]:
        key_u, key_g = ("passwd", uid), ("group", gid)
        if key_u not in self.names or key_g not in self.names:
            raw = self._cmd(
                f"getent passwd {uid} | cut -d: -f1; echo /; getent group {gid} | cut -d: -f1",
                become=False,
            )
            text = raw.stdout.decode("utf-8", "replace")
            user, _, grp = text.partition("/")
            self.names[key_u] = user.strip() or None
            self.names[key_g] = grp.strip() or None
        return self.names[key_u], self.names[key_g]

    def stat(self, path: str, *, become: bool | Become = False) -> FileStat:
        if self._become(become):
            raw = self._cmd(stat_script(path), become=become)
            st = parse_stat(path, raw.rc, raw.stdout)
            if st is None:
                raise self._oserror(errno.EACCES, "stat", path, raw.stderr.decode("utf-8", "replace"))
            return st
        with self.guard(f"while checking {path}"):
            try:
                st = self.sftp().lstat(path)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return FileStat(path=path, exists=False)
                raise self._oserror(exc.errno or errno.EACCES, "stat", path, str(exc)) from None
        uid, gid = int(st.st_uid or 0), int(st.st_gid or 0)
        owner, group = self._names(uid, gid)
        return existing(path, st.st_mode or 0, uid, gid, int(st.st_size or 0), owner, group)

    # ------------------------------------------------------------------------------------------ write
    def _resolve_id(self, kind: str, name: str) -> int:
        if name.isdigit():
            return int(name)
        key = (kind + "-by-name", name)
        cached = self.names.get(key)
        if cached is not None:
            return int(cached)
        raw = self._cmd(f"getent -- {kind} {q(name)} | cut -d: -f3", become=False)
        text = raw.stdout.decode("utf-8", "replace").strip()
        if raw.rc != 0 or not text.isdigit():
            what = "user" if kind == "passwd" else "group"
            raise RunbookError(  # bad input, not a connection problem
                f"host {self.host}: no {what} named {name!r} on the host",
                hint=f"create the {what} first, or fix owner/group in the step",
            )
        self.names[key] = text
        return int(text)

    def write_file(
        self,
        path: str,
        content: bytes,
        *,
        mode: int | None = None,
        owner: str | None = None,
        group: str | None = None,
        become: bool | Become = False,
    ) -> None:
        if self._become(become):
            self._write_as(path, content, mode=mode, owner=owner, group=group, become=become)
            return
        with self.guard(f"while writing {path}"):
            self._sftp_write(path, content, mode=mode, owner=owner, group=group)

    def _sftp_write(
        self, path: str, content: bytes, *, mode: int | None, owner: str | None, group: str | None
    ) -> None:
        sftp = self.sftp()
        directory = posixpath.dirname(path) or "."
        try:
            _makedirs(sftp, directory)
        except OSError as exc:
            raise self._oserror(exc.errno or errno.EACCES, "create directory for", path, str(exc)) from None
        try:
            old = sftp.lstat(path)
        except OSError:
            old = None
        final_mode = (
            mode if mode is not None else (statmod.S_IMODE(old.st_mode) if old and old.st_mode else None)
        )
        uid = gid = None
        if owner or group:
            uid = self._resolve_id("passwd", owner) if owner else (old.st_uid if old else None)
            gid = self._resolve_id("group", group) if group else (old.st_gid if old else None)
        elif old is not None and self.remote_uid() == 0:
            uid, gid = old.st_uid, old.st_gid  # root replacing someone's file keeps its owner
        tmp = posixpath.join(directory, f".runbook-{secrets.token_hex(6)}.tmp")
        try:
            with sftp.open(tmp, "wb") as fh:
                if final_mode is not None:
                    fh.chmod(final_mode)  # before any content is written
                fh.set_pipelined(True)
                fh.write(content)
            if uid is not None or gid is not None:
                st = sftp.lstat(tmp)
                sftp.chown(tmp, uid if uid is not None else st.st_uid, gid if gid is not None else st.st_gid)
            sftp.posix_rename(tmp, path)
        except OSError as exc:
            try:
                sftp.remove(tmp)
            except OSError:
                pass
            raise self._oserror(exc.errno or errno.EIO, "write", path, str(exc)) from None

    def _write_as(
        self,
        path: str,
        content: bytes,
        *,
        mode: int | None,
        owner: str | None,
        group: str | None,
        become: bool | Become,
    ) -> None:
        script = write_script(path, mode=mode, owner=owner, group=group)
        raw = self._cmd(script, become=become, stdin=content)
        if raw.rc != 0:
            raise self._oserror(errno.EACCES, "write", path, raw.stderr.decode("utf-8", "replace"))


def _makedirs(sftp, directory: str) -> None:
    missing = []
    d = directory
    while d not in ("", "/"):
        try:
            sftp.stat(d)
            break
        except OSError:
            missing.append(d)
            d = posixpath.dirname(d)
    for d in reversed(missing):
        try:
            sftp.mkdir(d)
        except OSError:
            sftp.stat(d)  # raced with someone else: fine if it exists now


# ------------------------------------------------------------------- as another user: sh scripts
def read_script(path: str) -> str:
    """sh: the file's bytes on stdout; exit _MISSING (no such file) or _ISDIR (a directory)."""
    p = q(path)
    return f"[ -e {p} ] || exit {_MISSING}; [ -d {p} ] && exit {_ISDIR}; exec cat -- {p}"


def stat_script(path: str) -> str:
    """sh: ``lstat`` of the path as one line (see parse_stat); exit _MISSING when it does not exist."""
    p = q(path)
    return f"[ -e {p} ] || [ -L {p} ] || exit {_MISSING}; exec stat -c '%f %u %g %s %U %G' -- {p}"


def parse_stat(path: str, rc: int, out: bytes) -> FileStat | None:
    """The FileStat stat_script printed (None: it failed)."""
    if rc == _MISSING:
        return FileStat(path=path, exists=False)
    parts = out.decode("utf-8", "replace").split()
    if rc != 0 or len(parts) != 6:
        return None
    owner, group = (None if name == "UNKNOWN" else name for name in parts[4:6])
    return existing(path, int(parts[0], 16), int(parts[1]), int(parts[2]), int(parts[3]), owner, group)


def existing(
    path: str, st_mode: int, uid: int, gid: int, size: int, owner: str | None, group: str | None
) -> FileStat:
    """The FileStat of a path that exists, from its lstat fields (sftp's or ``stat -c``'s)."""
    return FileStat(
        path=path,
        exists=True,
        is_dir=statmod.S_ISDIR(st_mode),
        is_link=statmod.S_ISLNK(st_mode),
        mode=statmod.S_IMODE(st_mode),
        uid=uid,
        gid=gid,
        size=size,
        owner=owner,
        group=group,
    )


def write_script(path: str, *, mode: int | None, owner: str | None, group: str | None) -> str:
    """sh: stdin to a temp file next to the path (mode and owner set), renamed over it: the file
    belongs to whoever runs the script unless owner/group say otherwise."""
    p = q(path)
    if mode is not None:
        chmod = f'chmod {mode:o} "$t"'
    else:
        chmod = (
            f'if [ -e {p} ]; then chmod "$(stat -c %a -- {p})" "$t"; '
            'else chmod "$(printf %o $((0666 & ~$(umask))))" "$t"; fi'
        )
    if owner or group:
        chown = f'chown -- {q((owner or "") + (":" + group if group else ""))} "$t"'
    else:
        chown = f'if [ -e {p} ] && [ "$(id -u)" = 0 ]; then chown "$(stat -c %u:%g -- {p})" "$t"; fi'
    return "\n".join(
        [
            "set -e",
            f"d=$(dirname -- {p})",
            'mkdir -p -- "$d"',
            't=$(mktemp "$d/.runbook-XXXXXXXXXX")',
            "trap 'rm -f -- \"$t\"' EXIT",
            'cat >"$t"',
            chmod,
            chown,
            f'mv -f -- "$t" {p}',
            "trap - EXIT",
        ]
    )
