"""The local transport: subprocesses and files on the control machine."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import os
import pwd
import selectors
import shutil
import signal
import stat as statmod
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from runbook.actions import CommandResult, FileStat
from runbook.actions.commands import Command
from runbook.execute.transports import become, handoff, ssh_exec, ssh_files
from runbook.execute.transports.base import Transport
from runbook.execute.transports.become import host_privilege
from runbook.execute.transports.capture import Capture, elided
from runbook.model import shellwords
from runbook.model.become import Become

KILL_WAIT = 5.0  # after the kill of a timed-out command, the longest wait for its pipes and exit


READ = 1 << 20  # bytes read from a pipe at once (as much as a widened pipe holds)


def _widen(fd: int) -> None:
    """Let the pipe hold 1 MiB (Linux; 64 KiB by default): a command printing a lot is read in
    1 MiB chunks, not 64 KiB ones (16 times fewer wake-ups of it and of us). Best effort."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, READ)  # type: ignore[attr-defined]


def _pump(
    proc: subprocess.Popen, stdin: bytes | None, out: Capture, err: Capture, deadline: float | None
) -> bool:
    """Stream the command's stdout/stderr into the captures (and feed its stdin) until both pipes
    close; True if the ``deadline`` (monotonic) passed first. Memory stays bounded whatever the
    command prints."""
    sel = selectors.DefaultSelector()
    try:
        for fh, cap in ((proc.stdout, out), (proc.stderr, err)):
            if fh is not None and not fh.closed:
                _widen(fh.fileno())
                sel.register(fh, selectors.EVENT_READ, cap)
        todo = memoryview(stdin or b"")
        if proc.stdin is not None:
            if stdin:
                os.set_blocking(proc.stdin.fileno(), False)
                sel.register(proc.stdin, selectors.EVENT_WRITE, None)
            else:
                proc.stdin.close()
        while sel.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return True
            for key, _ in sel.select(wait):
                if key.data is None:  # stdin
                    try:
                        n = os.write(key.fd, todo[: 1 << 16])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        n = len(todo)
                    todo = todo[n:]
                    if not todo:
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
                    continue
                data = os.read(key.fd, READ)
                if data:
                    key.data.write(data)
                else:
                    sel.unregister(key.fileobj)
        return False
    finally:
        sel.close()
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()


def _said(text: str) -> Capture:
    cap = Capture(None)
    cap.write(text.encode())
    return cap


class LocalTransport(Transport):
    def __init__(self, spec, *, max_output: object = None, **_other: object):
        super().__init__(spec, max_output=max_output)
        self._procs: set[subprocess.Popen] = set()  # every running command (hosts share a delegate)
        self._lock = threading.Lock()

    def _privilege(self, command: Command) -> Become | None:
        """Who the command must run as, or None when this process already is that user."""
        priv = host_privilege(self.spec, command)
        if priv is None:
            return None
        uid = os.geteuid()
        try:
            me = pwd.getpwuid(uid).pw_name
        except KeyError:
            me = str(uid)
        if priv.user in (me, str(uid)) or (priv.user == "root" and uid == 0):
            return None
        return priv

    def _spawn(self, command: Command) -> tuple[list[str], bytes | None]:
        """argv and stdin of the process that runs ``command`` (through sudo/su when it must)."""
        argv = list(command.argv) if command.argv is not None else ["/bin/sh", "-c", command.script or ""]
        priv = self._privilege(command)
        if priv is None:
            return argv, command.stdin
        uid = os.geteuid()
        method = become.how(priv, uid=uid, has_sudo=shutil.which("sudo") is not None)
        needed = become.password_needed(method, uid=uid) if priv.password is not None else False
        if needed is None:  # sudo: do the sudoers rules ask for a password?
            probe = ["sudo", "-n", "-H", *shellwords.split(priv.flags), "-u", priv.user, "true"]
            try:
                needed = (
                    subprocess.run(
                        probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=30
                    ).returncode
                    != 0
                )
            except (OSError, subprocess.SubprocessError):
                needed = True
        text = become.body(
            ssh_exec.inner_text(command),
            priv.user,
            method=method,
            flags=priv.flags,
            password=priv.password,
            persistent=False,
            has_stdin=command.stdin is not None,
            password_needed=needed,
        )
        stdin = command.stdin
        if needed and priv.password is not None:
            stdin = priv.password.encode() + b"\n" + (stdin or b"")
        return ["/bin/sh", "-c", text], stdin

    def _handoff(self, command: Command) -> tuple[list[str], bytes | None]:
        """(argv, stdin): a private script comes first on stdin, not in argv (see handoff)."""
        if command.private and self._privilege(command) is not None:
            command = handoff.via_stdin(command)  # sudo keeps only stdin: the script comes on it
        argv, stdin = self._spawn(command)
        form = handoff.shell_form(argv) if command.private else None
        if form is None:  # not private, another program, or via sudo (it stays an argument then)
            return argv, stdin
        shell, script, args = form
        text, line = handoff.stdin_body(script)
        return [shell, "-c", text, *args], line + (stdin or b"")

    def run(
        self, command: Command, *, timeout: float | None = None, redact: Callable[[str], str] | None = None
    ) -> CommandResult:
        start = time.monotonic()
        rc, out, err, timed_out = self._raw(command, timeout, self.output_limit)
        return CommandResult(
            rc=rc,
            stdout=out.text(redact),
            stderr=err.text(redact),
            duration=time.monotonic() - start,
            timed_out=timed_out,
            elided=elided(stdout=out, stderr=err),
        )

    def _raw(
        self, command: Command, timeout: float | None = None, limit: int | None = None
    ) -> tuple[int, Capture, Capture, bool]:
        """(rc, stdout, stderr, timed out) of a command, streamed into captures bounded by ``limit``
        (None: everything, for file contents read through a command)."""
        start = time.monotonic()
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in command.env.items()})
        argv, stdin = self._handoff(command)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=command.cwd or None,
                env=env,
                start_new_session=True,  # own process group: a timeout or Ctrl-C kills the whole tree
            )
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            return 127, Capture(None), _said(f"{exc}\n"), False
        except OSError as exc:  # e.g. E2BIG: a multi-megabyte command line
            why = exc.strerror or str(exc)
            return 126, Capture(None), _said(f"cannot start the command: {why}\n"), False
        with self._lock:
            self._procs.add(proc)
        out, err = Capture(limit), Capture(limit)
        try:
            deadline = None if timeout is None else start + timeout
            timed_out = _pump(proc, stdin, out, err, deadline)
            if not timed_out:  # its pipes are closed; it may still run (or have left a child)
                try:
                    proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
            if timed_out:
                self._kill(proc)
                _pump(proc, None, out, err, time.monotonic() + KILL_WAIT)  # what it printed while dying
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(KILL_WAIT)
        except BaseException:  # Ctrl-C while waiting: never leave the command running
            self._kill(proc)
            raise
        finally:
            with self._lock:
                self._procs.discard(proc)
            for fh in (proc.stdout, proc.stderr):
                if fh is not None:
                    fh.close()
        rc = proc.returncode if proc.returncode is not None else -9
        if timed_out:
            rc = 124
        elif rc < 0:  # killed by a signal: report it the way a shell would
            rc = 128 - rc
        return rc, out, err, timed_out

    def _as(self, become: bool | Become) -> Command | None:
        """A command skeleton that runs as ``become`` says, or None when no switch is needed."""
        probe = Command.shell("true", become=bool(become))
        probe = probe.as_user(become) if isinstance(become, Become) else probe
        return probe if self._privilege(probe) is not None else None

    def _file_op(self, how: Command, script: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        rc, out, err, _ = self._raw(replace(how, script=script, stdin=stdin))
        return rc, out.value(), err.value()

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cancel(self) -> None:
        """Stop every command running through this transport (several hosts may share it through
        delegate_to: localhost)."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                self._kill(proc)

    def read_file(self, path: str, *, become: bool | Become = False) -> bytes | None:
        how = self._as(become)
        if how is not None:  # as another user: through sudo/su, with that user's permissions
            rc, out, err = self._file_op(how, ssh_files.read_script(path))
            if rc in (ssh_files.MISSING, ssh_files.ISDIR):
                return None
            if rc != 0:
                raise OSError(errno.EACCES, f"cannot read {path}: {err.decode('utf-8', 'replace').strip()}")
            return out
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            return None

    def stat(self, path: str, *, become: bool | Become = False) -> FileStat:
        how = self._as(become)
        if how is not None:
            rc, out, err = self._file_op(how, ssh_files.stat_script(path))
            st = ssh_files.parse_stat(path, rc, out)
            if st is None:
                raise OSError(errno.EACCES, f"cannot stat {path}: {err.decode('utf-8', 'replace').strip()}")
            return st
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return FileStat(path=path, exists=False)
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = None
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = None
        return FileStat(
            path=path,
            exists=True,
            is_dir=statmod.S_ISDIR(st.st_mode),
            is_link=statmod.S_ISLNK(st.st_mode),
            mode=statmod.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size,
            owner=owner,
            group=group,
        )

    def write_file(self, path, content, *, mode=None, owner=None, group=None, become=False) -> None:
        how = self._as(become)
        if how is not None:  # the file belongs to the become user, written with its permissions
            script = ssh_files.write_script(path, mode=mode, owner=owner, group=group)
            rc, _, err = self._file_op(how, script, content)
            if rc != 0:
                raise OSError(errno.EACCES, f"cannot write {path}: {err.decode('utf-8', 'replace').strip()}")
            return
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        old_mode = None
        try:
            old_mode = statmod.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            pass
        fd, tmp = tempfile.mkstemp(prefix=".runbook-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            final_mode = mode if mode is not None else old_mode
            if final_mode is None:
                umask = os.umask(0)
                os.umask(umask)
                final_mode = 0o666 & ~umask
            os.chmod(tmp, final_mode)
            if owner or group:
                uid = pwd.getpwnam(owner).pw_uid if owner else -1
                gid = grp.getgrnam(group).gr_gid if group else -1
                os.chown(tmp, uid, gid)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
