"""The local transport: subprocesses and files on the control machine."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import selectors
import signal
import stat as statmod
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

from runbook.execute.transports.base import Transport
from runbook.execute.transports.capture import Capture, elided
from runbook.plan.actions import CommandResult, FileStat
from runbook.plan.commands import Command

KILL_WAIT = 5.0  # after the kill of a timed-out command, the longest wait for its pipes and exit


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
                data = os.read(key.fd, 1 << 17)
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


class LocalTransport(Transport):
    def __init__(self, spec, *, max_output: object = None, **_other: object):
        super().__init__(spec, max_output=max_output)
        self._procs: set[subprocess.Popen] = set()  # every running command (hosts share a delegate)
        self._lock = threading.Lock()

    def _argv(self, command: Command) -> list[str]:
        argv = list(command.argv) if command.argv is not None else ["/bin/sh", "-c", command.script or ""]
        become = command.become or self.spec.become
        if become and (os.geteuid() != 0 or command.become_user != "root"):
            argv = ["sudo", "-n", "-u", command.become_user, "--", *argv]
        return argv

    def run(
        self, command: Command, *, timeout: float | None = None, redact: Callable[[str], str] | None = None
    ) -> CommandResult:
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in command.env.items()})
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                self._argv(command),
                stdin=subprocess.PIPE if command.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=command.cwd or None,
                env=env,
                start_new_session=True,  # own process group: a timeout or Ctrl-C kills the whole tree
            )
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            return CommandResult(rc=127, stderr=f"{exc}\n", duration=time.monotonic() - start)
        except OSError as exc:  # e.g. E2BIG: a multi-megabyte command line
            why = exc.strerror or str(exc)
            return CommandResult(
                rc=126, stderr=f"cannot start the command: {why}\n", duration=time.monotonic() - start
            )
        with self._lock:
            self._procs.add(proc)
        out, err = Capture(self.output_limit), Capture(self.output_limit)
        try:
            deadline = None if timeout is None else start + timeout
            timed_out = _pump(proc, command.stdin, out, err, deadline)
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
        return CommandResult(
            rc=rc,
            stdout=out.text(redact),
            stderr=err.text(redact),
            duration=time.monotonic() - start,
            timed_out=timed_out,
            elided=elided(stdout=out, stderr=err),
        )

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

    def read_file(self, path: str, *, become: bool = False) -> bytes | None:
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            return None

    def stat(self, path: str, *, become: bool = False) -> FileStat:
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
