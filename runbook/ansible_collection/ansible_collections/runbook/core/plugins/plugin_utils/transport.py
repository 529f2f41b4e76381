"""An adapter from Ansible's connection to runbook's transport interface.

``ConnectionTransport`` lets runbook's driver (runbook.execute.driver.Drive) run a step kind through
the connection Ansible opened for the task (local, ssh, paramiko, ...): every command goes through
the action plugin's ``_low_level_execute_command`` (Ansible's become, its shell, the connection's
``exec_command``), file reads and stats are shell commands, file writes send the content on the
command's stdin (``in_data``) or, where the connection cannot, by ``put_file`` to a private temp file.
Host keys, users, keys and become are Ansible's: this adapter adds none of its own.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from ansible_collections.runbook.core.plugins.plugin_utils.tunnel import StdioForwarder

from runbook.actions import CommandResult, FileStat
from runbook.actions.commands import Command
from runbook.errors import TransportError
from runbook.execute.transports import ssh_files
from runbook.execute.transports.base import HostSpec, Transport
from runbook.model.become import Become

q = shlex.quote
TIMED_OUT = 124  # what coreutils' timeout(1) exits with
KILL_GRACE = 3  # seconds between TERM and KILL of a command that outlived its timeout


class ConnectionTransport(Transport):
    """runbook's Transport over an Ansible action plugin's connection."""

    def __init__(self, action: Any, spec: HostSpec, *, max_output: object = None):
        super().__init__(spec, max_output=max_output)
        self._action = action
        self._lost: str | None = None

    @property
    def unreachable(self) -> str | None:
        """Why Ansible's connection failed (the task reports the host unreachable), else None."""
        return self._lost

    # ------------------------------------------------------------------------------------ helpers
    def _ansible_become(self) -> bool:
        """Is Ansible's become configured for this task (become: true on the task or play)?"""
        return bool(getattr(self._action._connection, "become", None)) and bool(
            getattr(self._action._play_context, "become", False)
        )

    def _wrap(self, command: Command, privilege: Become | None, timeout: float | None) -> tuple[str, bool]:
        """The sh text for a command and whether Ansible's become should wrap it (sudoable)."""
        body = command.to_shell()
        if command.env:
            body = "".join(f"export {k}={q(str(v))}; " for k, v in command.env.items()) + body
        if command.cwd:
            body = f"cd {q(command.cwd)} && {body}"
        if timeout is not None:
            secs = max(1, int(timeout + 0.999))
            body = f"exec timeout -k {KILL_GRACE} {secs} /bin/sh -c {q(body)}"
        sudoable = False
        if privilege is not None:
            if self._ansible_become():
                sudoable = True  # Ansible's become (become_user/method/password of the task)
            else:
                if privilege.password:
                    raise TransportError(
                        f"host {self.name}: a step asks for privilege with a password",
                        hint="set become: true (and the become password) on the Ansible task instead",
                    )
                method = privilege.method if privilege.method in ("sudo",) else "sudo"
                body = f"{method} -n -u {q(privilege.user)} -- /bin/sh -c {q(body)}"
        return body, sudoable

    def run_raw(
        self, command: Command, *, timeout: float | None = None, privilege: Become | None = None
    ) -> tuple[int, bytes, bytes, float]:
        priv = privilege if privilege is not None else command.privilege
        text, sudoable = self._wrap(command, priv, timeout)
        started = time.monotonic()
        try:
            # the executable given: Ansible appends no `&& sleep 0` (a script's last line may be a
            # comment, a heredoc's end ...; the text is run as written, by sh -c)
            res = self._action._low_level_execute_command(
                text,
                sudoable=sudoable,
                in_data=command.stdin,
                executable=getattr(self._action._play_context, "executable", None) or "/bin/sh",
                encoding_errors="surrogateescape",
            )
        except Exception as exc:  # AnsibleConnectionFailure and friends: the host is unreachable
            from ansible.errors import AnsibleConnectionFailure

            why = f"host {self.name}: {exc}"
            if isinstance(exc, AnsibleConnectionFailure):
                self._lost = why
            raise TransportError(why) from None
        out = str(res.get("stdout", "")).encode("utf-8", "surrogateescape")
        err = str(res.get("stderr", "")).encode("utf-8", "surrogateescape")
        return int(res.get("rc") or 0), out, err, time.monotonic() - started

    # ---------------------------------------------------------------------------------- Transport
    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        """``host:port`` as the target sees it (a client kind's database, cache, URL), as
        ``runbook exec`` reaches it: on Ansible's ``ssh`` connection through ``ssh -W`` built by the
        connection plugin (its options, ControlMaster, host key checking); on ``local``, and where a
        password feeds ssh (sshpass), directly from the controller."""
        conn = self._action._connection
        password = getattr(self._action._play_context, "password", None)
        with contextlib.suppress(Exception):
            password = conn.get_option("password") or password
        if getattr(conn, "transport", "") != "ssh" or password:
            yield (host, port)
            return
        conn.host = conn.get_option("host") or self._action._play_context.remote_addr
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        argv = conn._build_command(conn.get_option("ssh_executable"), "ssh", "-W", target, conn.host)
        forwarder = StdioForwarder(argv)
        try:
            yield forwarder.address
        finally:
            forwarder.close()

    def run(
        self, command: Command, *, timeout: float | None = None, redact: Callable[[str], str] | None = None
    ) -> CommandResult:
        rc, out, err, took = self.run_raw(command, timeout=timeout)
        limit = self.output_limit
        text_out = out[-limit:].decode("utf-8", "replace") if limit else out.decode("utf-8", "replace")
        text_err = err[-limit:].decode("utf-8", "replace") if limit else err.decode("utf-8", "replace")
        if redact is not None:
            text_out, text_err = redact(text_out), redact(text_err)
        return CommandResult(
            rc=rc,
            stdout=text_out,
            stderr=text_err,
            duration=took,
            timed_out=timeout is not None and rc == TIMED_OUT,
        )

    def _as(self, become: bool | Become) -> Become | None:
        if isinstance(become, Become):
            return become
        if become:
            return Become(self.spec.become_user or "root")
        return None

    def _script(
        self, script: str, become: bool | Become, stdin: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        priv = self._as(become)
        rc, out, err, _ = self.run_raw(
            Command.shell(script, stdin=stdin, become=priv is not None), privilege=priv
        )
        return rc, out, err

    def read_file(self, path: str, *, become: bool | Become = False) -> bytes | None:
        rc, out, err = self._script(ssh_files.read_script(path), become)
        if rc in (ssh_files.MISSING, ssh_files.ISDIR):
            return None
        if rc != 0:
            raise OSError(
                13, f"host {self.name}: cannot read {path}: {err.decode('utf-8', 'replace').strip()}"
            )
        return out

    def stat(self, path: str, *, become: bool | Become = False) -> FileStat:
        rc, out, err = self._script(ssh_files.stat_script(path), become)
        st = ssh_files.parse_stat(path, rc, out)
        if st is None:
            raise OSError(
                13, f"host {self.name}: cannot stat {path}: {err.decode('utf-8', 'replace').strip()}"
            )
        return st

    def write_file(self, path, content, *, mode=None, owner=None, group=None, become=False) -> None:  # type: ignore[no-untyped-def]
        script = ssh_files.write_script(path, mode=mode, owner=owner, group=group)
        conn = self._action._connection
        if getattr(conn, "has_pipelining", True) or conn.transport in ("local", "ssh", "paramiko"):
            rc, _, err = self._script(script, become, stdin=bytes(content))
        else:  # a connection without stdin: the bytes travel by put_file to a private temp file
            rc, err = self._put_then(script, bytes(content), become)
        if rc != 0:
            raise OSError(
                13, f"host {self.name}: cannot write {path}: {err.decode('utf-8', 'replace').strip()}"
            )

    def _put_then(self, script: str, content: bytes, become: bool | Become) -> tuple[int, bytes]:
        rc, out, err = self._script("umask 077; mktemp", False)
        if rc != 0:
            return rc, err
        remote = out.decode().strip()
        fd, local = tempfile.mkstemp(prefix="runbook-put-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            self._action._connection.put_file(local, remote)
            rc, _, err = self._script(
                f"{{ {script}\n}} <{q(remote)}; rc=$?; rm -f -- {q(remote)}; exit $rc", become
            )
            return rc, err
        finally:
            os.unlink(local)
