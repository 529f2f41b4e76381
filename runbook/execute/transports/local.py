"""The local transport: subprocesses and files on the control machine."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import stat as statmod
import subprocess
import tempfile
import threading
import time

from runbook.execute.transports import handoff
from runbook.execute.transports.base import Transport
from runbook.plan.actions import CommandResult, FileStat
from runbook.plan.commands import Command


class LocalTransport(Transport):
    def __init__(self, spec):
        super().__init__(spec)
        self._procs: set[subprocess.Popen] = set()  # every running command (hosts share a delegate)
        self._lock = threading.Lock()

    def _argv(self, command: Command) -> list[str]:
        argv = list(command.argv) if command.argv is not None else ["/bin/sh", "-c", command.script or ""]
        become = command.become or self.spec.become
        if become and (os.geteuid() != 0 or command.become_user != "root"):
            argv = ["sudo", "-n", "-u", command.become_user, "--", *argv]
        return argv

    def _handoff(self, command: Command) -> tuple[list[str], bytes | None]:
        """(argv, stdin): a private script comes first on stdin, not in argv (see handoff)."""
        if command.private and self._argv(command)[0] == "sudo":
            command = handoff.via_stdin(command)  # sudo keeps only stdin: the script comes on it
        argv = self._argv(command)
        form = handoff.shell_form(argv) if command.private else None
        if form is None:  # not private, another program, or via sudo (it stays an argument then)
            return argv, command.stdin
        shell, script, args = form
        text, line = handoff.stdin_body(script)
        return [shell, "-c", text, *args], line + (command.stdin or b"")

    def run(self, command: Command, *, timeout: float | None = None) -> CommandResult:
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in command.env.items()})
        start = time.monotonic()
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
            return CommandResult(rc=127, stderr=f"{exc}\n", duration=time.monotonic() - start)
        except OSError as exc:  # e.g. E2BIG: a multi-megabyte command line
            why = exc.strerror or str(exc)
            return CommandResult(
                rc=126, stderr=f"cannot start the command: {why}\n", duration=time.monotonic() - start
            )
        with self._lock:
            self._procs.add(proc)
        timed_out = False
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill(proc)
            out, err = proc.communicate()
        except BaseException:  # Ctrl-C while waiting: never leave the command running
            self._kill(proc)
            raise
        finally:
            with self._lock:
                self._procs.discard(proc)
        rc = proc.returncode
        if timed_out:
            rc = 124
        elif rc < 0:  # killed by a signal: report it the way a shell would
            rc = 128 - rc
        return CommandResult(
            rc=rc,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration=time.monotonic() - start,
            timed_out=timed_out,
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
