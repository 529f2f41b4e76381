"""The SSH transport (paramiko): one connection per host, reused for every step, sftp and tunnels.

Commands run in a persistent remote ``sh`` (runbook.execute.transports.pshell) so a step does not pay
for a new session and the login shell's rc files; if that shell cannot start, each command gets its
own exec channel (same semantics, slower). Files move over sftp (atomic temp + posix-rename), or
through commands when ``become`` needs another user. paramiko is imported here only, lazily.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from runbook.actions import CommandResult, FileStat
from runbook.actions.commands import Command
from runbook.errors import TransportError
from runbook.execute.transports import become, handoff
from runbook.execute.transports.base import HostSpec, Transport
from runbook.execute.transports.become import host_privilege
from runbook.execute.transports.capture import elided
from runbook.execute.transports.hostkeys import trust_new_from_vars
from runbook.execute.transports.paramiko_import import load_paramiko
from runbook.execute.transports.pshell import (
    KILL_GRACE,
    Facts,
    PersistentShell,
    Raw,
    ShellLost,
    ShellNotStarted,
    ShellWedged,
    kill_script,
    parse_id,
)
from runbook.execute.transports.ssh_config import Endpoint, options_from_args, resolve
from runbook.execute.transports.ssh_connect import Abort, Connection, ConnectOptions, Dial, connect
from runbook.execute.transports.ssh_exec import become_body, close_quietly, exec_run, plain_body
from runbook.execute.transports.ssh_files import SSHFiles
from runbook.model.become import Become
from runbook.model.values import truthy
from runbook.render.secrets import MASK

HARD_GRACE = 2 * KILL_GRACE + 5.0  # after a command's timeout: TERM, KILL, then give up on the peer


class SSHTransport(Transport):
    def __init__(
        self,
        spec: HostSpec,
        *,
        known_hosts: str | None = None,
        trust_new_hosts: bool = False,
        ssh_config: str | None = None,
        connect_timeout: float = 10.0,
        command_timeout: float | None = None,
        keepalive: float = 15.0,
        keepalive_count: int = 3,
        allow_agent: bool = True,
        persistent_shell: bool | None = None,
        max_output: object = None,
        **_other: object,  # options meant for other transports are ignored
    ):
        super().__init__(spec, max_output=max_output)
        hv = spec.vars or {}
        self.ssh_config = ssh_config
        self.command_timeout = command_timeout
        self.persistent = (
            persistent_shell
            if persistent_shell is not None
            else truthy(hv.get("runbook_ssh_persistent_shell", True))
        )
        self._abort = Abort()  # abandon(): ends a connect under way in another thread
        self.options = ConnectOptions(
            abort=self._abort,
            known_hosts=known_hosts,
            trust_new_hosts=trust_new_hosts or trust_new_from_vars(hv),
            connect_timeout=float(connect_timeout),
            keepalive=float(keepalive),
            keepalive_count=int(keepalive_count),
            allow_agent=allow_agent,
            host=spec.name,
        )
        self.endpoint: Endpoint | None = None
        self._conn: Connection | None = None
        self._shell: PersistentShell | None = None
        self._shell_failed: str | None = None  # why the persistent shell is not used
        self._facts: Facts | None = None
        self._sftp: Any = None
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._down: str | None = None  # the connection was lost, or could not be made
        self.names: dict[tuple[str, object], str | None] = {}  # (kind, id or name) -> name/id cache
        self.files = SSHFiles(
            self.name, sftp=self.sftp, guard=self.guard, run_raw=lambda c: self.run_raw(c, timeout=None),
            become_user_for=self.become_user_for, remote_uid=lambda: self.facts.uid, names=self.names,
        )  # fmt: skip
        self._passwords: set[str] = set()  # become passwords commands brought (masked in messages)

    # ----------------------------------------------------------------------------- connection
    def connect(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn.active:
                return
            self._drop()
            try:
                if self.endpoint is None:
                    self.endpoint = resolve(self.spec, self.ssh_config)
                self._conn = connect(self.endpoint, self.options)
            except TransportError as exc:
                self._down = exc.message
                raise
            finally:
                self._drop_dial()  # used by this connect, or of no use to a later one
            self._down = None
            if self.persistent and self._shell_failed is None:
                self._open_shell()

    def warm_up(self) -> None:
        load_paramiko()  # here, in the caller's thread

    def dial_early(self) -> None:
        """Begin the TCP connect now, before paramiko is imported, when the host's address and port
        are known without it: no ssh_config file in effect and no ProxyJump in the host's ssh
        args (the only option of those that sends the connection elsewhere). connect() takes the
        socket only if the endpoint it resolves is that one."""
        if self.options.dialed is not None or self._conn is not None or self.endpoint is not None:
            return
        config = os.path.expanduser(self.ssh_config or "~/.ssh/config")
        if config != os.devnull and os.path.exists(config):
            return
        args = options_from_args(self.spec.vars)
        if "proxyjump" in args:
            return
        try:  # as the connect reads it: ConnectTimeout 0 (or none) is the transport's default
            given = float(args["connecttimeout"]) if args.get("connecttimeout") else 0.0
        except ValueError:
            return
        if not 0.0 <= given < float("inf"):  # (nan too): the connect itself says what it does with it
            return
        timeout = given or self.options.connect_timeout
        self.options.dialed = Dial(
            self.spec.address, self.spec.port or 22, timeout, f"host {self.spec.name}", self.options.keepalive
        )

    def _drop_dial(self) -> None:
        dialed, self.options.dialed = self.options.dialed, None
        if dialed is not None:
            dialed.drop()

    @property
    def connect_bound(self) -> float:
        """The longest connect() can take: each of its waits is bounded (TCP, banner, key exchange,
        authentication: ``ConnectTimeout`` each, per hop), then the shell's start (``max(30 s,
        ConnectTimeout)``), with a margin. Larger once the endpoint is resolved (its hops are known)."""
        ep = self.endpoint
        timeout = max(self.options.connect_timeout, (ep.connect_timeout or 0) if ep is not None else 0)
        hops = 1 + (len(ep.jumps) if ep is not None else 0)
        return hops * 5 * timeout + max(30.0, timeout) + 10.0

    def abandon(self) -> None:
        self._abort.fire()  # a connect under way fails now; it holds the lock until then
        self._drop_dial()
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()

    def _open_shell(self) -> None:
        assert self._conn is not None
        try:
            # its hello is answered later (facts, or the first step sent right behind it)
            self._shell = PersistentShell(
                self._conn.transport, timeout=max(30.0, self.options.connect_timeout), redact=self._redact
            )
        except Exception as exc:  # any failure: fall back to one exec channel per command
            self._shell_unusable(exc, "while starting the remote shell")

    def _shell_unusable(self, exc: BaseException, what: str) -> None:
        """The shell did not start (it never printed READY): commands get exec channels instead."""
        assert self._conn is not None
        if self._shell is not None:
            close_quietly(self._shell.chan, wait=0.0)
        self._shell = None
        if self._dead(self._conn, 0.5 if isinstance(exc, ShellLost) else 0.0):
            raise self._lost(f"{what}: {exc}") from None
        self._shell_failed = f"{type(exc).__name__}: {exc}"

    @property
    def mode(self) -> str:
        """'persistent' or 'exec' (for benchmarks and diagnostics)."""
        return "persistent" if self._shell is not None else "exec"

    def _ensure(self) -> Connection:
        with self._lock:
            if self._conn is None or not self._conn.active:
                self.connect()
            assert self._conn is not None
            if self.persistent and self._shell is None and self._shell_failed is None:
                self._open_shell()
            return self._conn

    def _drop(self) -> None:
        """Close everything; never waits long (a polite close to a server that stopped reading
        would wait until the connection is declared dead), the connection itself is always closed."""
        for closer in (self._sftp, self._shell):
            if closer is not None:
                close_quietly(closer, wait=1.0 if self._conn is not None and self._conn.active else 0.0)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._sftp = self._shell = self._conn = None

    def close(self) -> None:
        # not held up by a thread stuck on a silent peer (after Ctrl-C twice): closing the
        # connection is what ends that thread's wait
        got = self._lock.acquire(timeout=2.0)
        try:
            self._drop_dial()
            self._drop()
        finally:
            if got:
                self._lock.release()

    def _redact(self, text: str) -> str:
        for secret in (self.spec.become_password, self.spec.password, *self._passwords):
            if secret:
                text = text.replace(secret, MASK)
        return text

    @staticmethod
    def _dead(conn: Connection, wait: float = 2.0) -> bool:
        """Is the connection gone? (A channel can see EOF a moment before the transport notices.)"""
        deadline = time.monotonic() + wait
        while conn.active:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    @property
    def unreachable(self) -> str | None:
        return self._down

    def _lost(self, what: str) -> TransportError:
        ep = self.endpoint.display if self.endpoint else self.spec.address
        why = "the server closed the connection"
        if self._conn is not None:
            exc = self._conn.transport.get_exception()
            if self._conn.dead_reason:
                why = self._conn.dead_reason
            elif exc is not None and str(exc):
                why = f"{type(exc).__name__}: {exc}"
        self._down = f"connection to {ep} lost ({why})"
        return TransportError(
            f"host {self.name}: connection to {ep} lost {self._redact(what)} ({why})",
            hint="the host, its sshd or the network went away; the step's effect on the host is unknown",
        )

    # ----------------------------------------------------------------------------- facts, become
    @property
    def facts(self) -> Facts:
        if self._facts is None:
            conn = self._ensure()
            shell = self._shell
            if shell is not None:
                try:
                    self._facts = shell.facts
                except Exception as exc:
                    with self._lock:
                        self._shell_unusable(exc, "while starting the remote shell")
            if self._facts is None:
                probe = Command.shell(
                    "command -v setsid >/dev/null 2>&1 && echo setsid || echo none; "
                    "command -v sudo >/dev/null 2>&1 && echo 1 || echo 0; id"
                )
                raw = self._exec(conn, plain_body(probe), None, 60, False)
                lines = raw.stdout.decode("utf-8", "replace").splitlines()
                try:
                    uid, user = parse_id(lines[2])
                except (IndexError, ValueError):
                    err = self._redact(raw.stderr[-300:].decode("utf-8", "replace"))
                    raise TransportError(
                        f"host {self.name}: cannot run commands: {err!r}",
                        hint="is the login shell usable (not nologin, no ForceCommand)?",
                    ) from None
                self._facts = Facts(uid, user, "", lines[0] == "setsid", lines[1] == "1")
        return self._facts

    def become_user_for(self, become: bool | Become) -> str | None:
        """The user file operations switch to, or None when the login user already is that user."""
        probe = Command.shell("true", become=bool(become))
        priv = self.privilege(probe.as_user(become) if isinstance(become, Become) else probe)
        return priv.user if priv is not None else None

    def privilege(self, command: Command) -> Become | None:
        """Who ``command`` must run as (user, method, flags, password), or None when it runs as the
        login user: it asks for no privilege, or the login user already is the one it asks for."""
        priv = host_privilege(self.spec, command)
        if priv is None:
            return None
        f = self.facts
        if priv.user == f.user or (priv.user == "root" and f.uid == 0):
            return None
        if priv.password:
            self._passwords.add(priv.password)
        return priv

    def _body(self, command: Command, persistent: bool, needed: bool | None = None) -> str:
        priv = self.privilege(command)
        if priv is None:
            return plain_body(command)
        f = self.facts
        method = become.how(priv, uid=f.uid, has_sudo=f.sudo)
        if needed is None:
            needed = become.password_needed(method, uid=f.uid)
        return become_body(
            command,
            priv.user,
            how=method,
            flags=priv.flags,
            password=priv.password,
            persistent=persistent,
            has_stdin=command.stdin is not None,
            password_needed=needed,
        )

    # ----------------------------------------------------------------------------- commands
    def run(
        self, command: Command, *, timeout: float | None = None, redact: Callable[[str], str] | None = None
    ) -> CommandResult:
        start = time.monotonic()
        raw = self.run_raw(command, timeout=timeout, limit=self.output_limit)
        out, err = raw.out, raw.err
        return CommandResult(
            rc=124 if raw.timed_out else raw.rc,
            stdout=out.text(redact) if out is not None else raw.stdout.decode("utf-8", "replace"),
            stderr=err.text(redact) if err is not None else raw.stderr.decode("utf-8", "replace"),
            duration=time.monotonic() - start,
            timed_out=raw.timed_out,
            elided=elided(stdout=out, stderr=err),
        )

    def run_raw(self, command: Command, *, timeout: float | None = None, limit: int | None = None) -> Raw:
        """Run a command; bytes out (all of them unless ``limit``: then a bounded head and tail per
        stream). TransportError if the connection is lost meanwhile.

        A timeout is enforced here, whatever the host does: the step is killed at ``timeout``; if
        even that gets no answer (every wait on a silent peer: sending the script, opening or
        starting a channel), the connection is declared dead ``HARD_GRACE`` seconds later."""
        self._cancel.clear()
        if timeout is None:
            timeout = self.command_timeout
        with self._lock:
            conn = self._ensure()
        if timeout is None:
            return self._run_raw(conn, command, None, limit)
        timer = threading.Timer(  # (it bounds the wait for a shell's hello sent with the step too)
            timeout + HARD_GRACE,
            conn.declare_dead,
            args=(f"no answer within the step's timeout ({timeout:g}s) + {HARD_GRACE:g}s",),
        )
        timer.daemon = True
        timer.start()
        try:
            return self._run_raw(conn, command, timeout, limit)
        finally:
            timer.cancel()

    def _run_raw(self, conn: Connection, command: Command, timeout: float | None, limit: int | None) -> Raw:
        with self._lock:
            shell = self._shell
        if command.private and self.privilege(command) is not None:
            command = handoff.via_stdin(command)  # sudo keeps only stdin: the script comes on it
        if shell is not None:
            body = self._body(command, True)
            if self._shell is not shell:  # its hello failed (asking for facts): exec channels now
                shell = None
        if shell is not None:
            try:
                raw = shell.run(
                    body,
                    stdin=command.stdin,
                    timeout=timeout,
                    cancelled=self._cancel.is_set,
                    kill=self._kill,
                    put_file=self._put_file,
                    limit=limit,
                )
            except ShellNotStarted as exc:  # the step did not run: it runs on an exec channel
                with self._lock:
                    self._shell_unusable(exc, "while starting the remote shell")
            except ShellWedged:
                self._discard_shell()
                return Raw(124 if not self._cancel.is_set() else 143, timed_out=not self._cancel.is_set())
            except BaseException as exc:
                if shell.broken:  # interrupted mid-step (Ctrl-C ...): the shell is out of step
                    self._discard_shell()
                if not isinstance(exc, (ShellLost, OSError, EOFError, load_paramiko().SSHException)):
                    raise
                if self._dead(conn):
                    raise self._lost(f"while running `{self._redact(command.display())}`") from None
                raise TransportError(
                    f"host {self.name}: the remote shell died while running "
                    f"`{self._redact(command.display())}`: {self._redact(str(exc))}",
                    hint="the step's effect on the host is unknown; the next step gets a new shell",
                ) from None
            else:
                return raw
        needed = None
        priv = self.privilege(command)
        if priv is not None and priv.password is not None:
            method = become.how(priv, uid=self.facts.uid, has_sudo=self.facts.sudo)
            needed = become.password_needed(method, uid=self.facts.uid)
            if needed is None:  # sudo: do the sudoers rules ask for it? (`sudo -n true` says)
                probe = replace(command, script="true", argv=None, stdin=None, env={}, cwd=None)
                needed = self._exec(conn, self._body(probe, False), None, 60, False).rc != 0
        body = self._body(command, False, needed)
        stdin = command.stdin
        if needed and priv is not None:
            stdin = (priv.password or "").encode() + b"\n" + (stdin or b"")
        return self._exec(conn, body, stdin, timeout, True, command, limit)

    def _exec(
        self,
        conn: Connection,
        body: str,
        stdin: bytes | None,
        timeout: float | None,
        cancellable: bool,
        command: Command | None = None,
        limit: int | None = None,
    ) -> Raw:
        try:
            return exec_run(
                conn.transport,
                body,
                stdin=stdin,
                timeout=timeout,
                cancelled=self._cancel.is_set if cancellable else (lambda: False),
                kill=self._kill,
                limit=limit,
            )
        except (ShellLost, OSError, EOFError, load_paramiko().SSHException) as exc:
            shown = f"`{self._redact(command.display())}`" if command else "a command"
            if self._dead(conn):
                raise self._lost(f"while running {shown}") from None
            raise TransportError(
                f"host {self.name}: could not run {shown}: {self._redact(str(exc))}"
            ) from None

    def _discard_shell(self) -> None:
        with self._lock:
            if self._shell is not None:
                close_quietly(self._shell.chan)
                self._shell = None

    def _kill(self, pid: int, signal: str, group: bool) -> None:
        """Signal a running step from a side channel (the shell itself is busy waiting)."""
        conn = self._conn
        if conn is None or not conn.active:
            return

        def go() -> None:
            with contextlib.suppress(Exception):
                chan = conn.transport.open_session(timeout=10)
                try:
                    chan.exec_command("/bin/sh -c " + shlex.quote(kill_script(pid, signal, group)))
                    deadline = time.monotonic() + 10
                    while not chan.exit_status_ready() and time.monotonic() < deadline:
                        time.sleep(0.05)
                finally:
                    chan.close()

        threading.Thread(target=go, daemon=True, name="runbook-ssh-kill").start()

    def cancel(self) -> None:
        self._cancel.set()

    # ----------------------------------------------------------------------------- files
    def sftp(self) -> Any:
        with self._lock:
            conn = self._ensure()
            if self._sftp is None or self._sftp.sock.closed:
                try:
                    self._sftp = conn.transport.open_sftp_client()
                except Exception as exc:
                    if not conn.active:
                        raise self._lost(f"while opening sftp: {exc}") from None
                    raise TransportError(
                        f"host {self.name}: cannot start sftp: {exc}",
                        hint="enable the sftp subsystem in the host's sshd_config (Subsystem sftp ...)",
                    ) from None
            return self._sftp

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Around sftp calls: a dropped connection becomes TransportError, not an sftp exception."""
        paramiko = load_paramiko()

        try:
            yield
        except (paramiko.SSHException, EOFError, OSError) as exc:
            conn = self._conn
            if conn is None or self._dead(conn, 0.5):
                self._sftp = None
                raise self._lost(what) from None
            if isinstance(exc, OSError):
                raise
            self._sftp = None
            raise TransportError(f"host {self.name}: sftp failed {what}: {exc}") from None

    def _put_file(self, path: str, data: bytes) -> None:
        with self.sftp().open(path, "wb") as fh:
            fh.set_pipelined(True)
            fh.write(data)

    def read_file(self, path: str, *, become: bool = False) -> bytes | None:
        return self.files.read_file(path, become=become)

    def stat(self, path: str, *, become: bool = False) -> FileStat:
        return self.files.stat(path, become=become)

    def write_file(self, path, content, *, mode=None, owner=None, group=None, become=False) -> None:
        self.files.write_file(path, content, mode=mode, owner=owner, group=group, become=become)

    # ----------------------------------------------------------------------------- tunnels
    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        from runbook.execute.transports.ssh_tunnel import Forwarder

        conn = self._ensure()
        fwd = Forwarder(conn.transport, host, port, open_timeout=self.options.connect_timeout)
        try:
            yield fwd.address
        finally:
            fwd.close()
