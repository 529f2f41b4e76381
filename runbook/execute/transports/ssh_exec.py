"""How a Command becomes remote sh text (env, cwd, become via sudo/su), and the fallback runner that
uses one SSH exec channel per command when the persistent shell is not available.

Secrets: the become password only ever travels inside sh text as printf octal escapes (a builtin, so
it is in no process's argv) or on a channel's stdin; it is never in a display string, log or error.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import shlex
import threading
import time
from collections.abc import Callable
from typing import Any

from runbook.actions.commands import Command
from runbook.execute.transports import become, handoff
from runbook.execute.transports.capture import Capture
from runbook.execute.transports.pshell import KILL_GRACE, POLL, READ, Raw, ShellLost

q = shlex.quote


def _env_lines(command: Command) -> list[str]:
    out = []
    for k, v in command.env.items():
        if not str(k).replace("_", "a").isalnum() or str(k)[:1].isdigit():
            raise ValueError(f"invalid environment variable name {k!r}")
        out.append(f"export {k}={q(str(v))}")
    return out


def _cd_line(command: Command) -> list[str]:
    return [f"cd -- {q(command.cwd)} || exit 1"] if command.cwd else []


def plain_body(command: Command) -> str:
    """Subshell text that runs the command as the login user (env via export: not in argv)."""
    lines = _env_lines(command) + _cd_line(command)
    form = handoff.shell_form(command.argv) if command.argv is not None and command.private else None
    if form is not None:  # [bash, -c, script] holding a secret: a here-document (see handoff)
        lines.append(handoff.heredoc("exec $__rb_ss", form[1], form[0], form[2]))
    elif command.argv is not None:
        lines.append("exec $__rb_ss " + " ".join(q(a) for a in command.argv))
    elif command.private:  # it holds a secret: a here-document, not an argument (see handoff)
        lines.append(handoff.heredoc("exec $__rb_ss", command.script or ""))
    else:
        lines.append(f"exec $__rb_ss /bin/sh -c {q(command.script or '')}")
    return "\n".join(lines)


def inner_text(command: Command) -> str:
    """sh text of the command with its cd and environment (run by the become user's shell)."""
    return "\n".join([*_cd_line(command), *_env_lines(command), command.to_shell()])


_inner = inner_text


def become_body(
    command: Command,
    user: str,
    *,
    how: str,
    password: str | None,
    persistent: bool,
    has_stdin: bool,
    password_needed: bool | None = None,
    flags: str = "",
) -> str:
    """Subshell text that runs the command as ``user`` through ``how`` (sudo or su): see
    runbook.execute.transports.become."""
    return become.body(
        _inner(command),
        user,
        method=how,
        flags=flags,
        password=password,
        persistent=persistent,
        has_stdin=has_stdin,
        password_needed=password_needed,
    )


def _take_pid(err: bytearray, token: str) -> int | None:
    """Remove the ``TOKEN PID`` line the wrapper printed first on stderr; its pid, once complete."""
    if b"\n" not in err:
        return None
    first, _, rest = bytes(err).partition(b"\n")
    parts = first.split()
    if len(parts) == 2 and parts[0] == token.encode() and parts[1].isdigit():
        err[:] = rest
        return int(parts[1])
    return -1  # not ours (cannot happen: printed before anything else runs)


def exec_run(
    transport: Any,
    body: str,
    *,
    stdin: bytes | None,
    timeout: float | None,
    cancelled: Callable[[], bool],
    kill: Callable[[int, str, bool], None],
    open_timeout: float = 30.0,
    limit: int | None = None,
) -> Raw:
    """Run ``body`` on a fresh exec channel (the fallback path). The first stderr line carries the
    pid so a timeout or cancel can signal the process group from a side channel. Output streams
    into two Captures (bounded by ``limit``)."""
    token = "RBK" + secrets.token_hex(10)
    chan = transport.open_session(timeout=open_timeout)
    out, err = Capture(limit), Capture(limit)
    pid: int | None = None
    finished = False
    try:
        reader, first = handoff.stdin_body(body)  # the body (env, script) comes on stdin, not argv
        chan.exec_command("/bin/sh -c " + q(f"printf '%s %s\\n' {token} \"$$\" >&2\n{reader}"))
        payload = first + (stdin or b"")

        def feed() -> None:
            try:
                chan.sendall(payload)
                chan.shutdown_write()
            except Exception:
                pass

        # a thread, so a command that writes before it reads cannot deadlock us
        threading.Thread(target=feed, daemon=True, name="runbook-ssh-stdin").start()
        head = bytearray()  # stderr until the pid line is complete
        start = time.monotonic()
        timed_out = was_cancelled = False
        stage, next_kill = 0, float("inf")

        def drain() -> bool:
            nonlocal pid
            got = False
            while chan.recv_stderr_ready():
                data = chan.recv_stderr(READ)
                got = got or bool(data)
                if pid is None:
                    head.extend(data)
                    pid = _take_pid(head, token)
                    if pid is not None:
                        err.write(bytes(head))
                        head.clear()
                else:
                    err.write(data)
            while chan.recv_ready():
                data = chan.recv(READ)
                if not data:
                    break
                got = True
                out.write(data)
            return got

        while True:
            if not (chan.recv_ready() or chan.recv_stderr_ready() or chan.closed or chan.eof_received):
                with contextlib.suppress(OSError, ValueError):
                    select.select([chan], [], [], POLL)
            got = drain()
            done = chan.closed or (chan.exit_status_ready() and chan.eof_received)
            if done and not got and not chan.recv_ready() and not chan.recv_stderr_ready():
                drain()
                break
            if not got and chan.eof_received and not chan.exit_status_ready():
                time.sleep(0.005)  # EOF already seen: wait for exit-status without spinning
            now = time.monotonic()
            if stage == 0:
                if timeout is not None and now - start >= timeout:
                    timed_out = True
                elif cancelled():
                    was_cancelled = True
                if timed_out or was_cancelled:
                    if pid is not None and pid > 1:
                        kill(pid, "TERM", True)
                    stage, next_kill = 1, now + KILL_GRACE
            elif now >= next_kill:
                if stage == 2 or pid is None or pid <= 1:
                    finished = True
                    return Raw(124 if timed_out else 143, timed_out=timed_out, cancelled=was_cancelled, out=out, err=err)
                kill(pid, "KILL", True)
                stage, next_kill = 2, now + KILL_GRACE
        if head:
            err.write(bytes(head))
        finished = True
        rc = chan.recv_exit_status() if chan.status_event.is_set() else -1
        if rc == -1:  # no exit-status: killed by a signal (exit-signal) or the connection went away
            deadline = time.monotonic() + 1  # the transport may notice a dead socket a moment later
            while transport.is_active() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not transport.is_active():
                raise ShellLost("the connection closed before the command finished")
            rc = 143
        return Raw(rc, timed_out=timed_out, cancelled=was_cancelled, out=out, err=err)
    except BaseException:
        if not finished and pid is not None and pid > 1:  # Ctrl-C mid-command: never leave it running
            with contextlib.suppress(Exception):
                kill(pid, "KILL", True)
        raise
    finally:
        close_quietly(chan)


def close_quietly(chan: Any, wait: float = 2.0) -> None:
    """Close a channel without ever blocking for long (closing sends a message: on a connection
    whose peer stopped reading that can wait until the connection is declared dead)."""
    t = threading.Thread(target=_close, args=(chan,), daemon=True, name="runbook-ssh-close")
    t.start()
    t.join(wait)


def _close(chan: Any) -> None:
    with contextlib.suppress(Exception):
        chan.close()
