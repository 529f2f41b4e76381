"""One persistent POSIX ``sh`` per host: every step runs in a fresh subshell of it, so a step costs a
fork or two on the host instead of a new SSH session plus the login shell's rc files (``pyenv init``
in ~/.bashrc is ~150 ms per command on real hosts).

Protocol (all on the channel's stdout, which carries nothing else: steps write to files):

    client -> sh:  ( <env/cd/become>; exec setsid /bin/sh -c '<script>' ) <IN >$D/o 2>$D/e &
                   printf '%s START %s\\n' TOKEN "$!"; wait "$!"; printf '%s END %s\\n' TOKEN "$?"
                   cat $D/o; printf '\\nTOKEN-SEP\\n'; cat $D/e; printf '\\nTOKEN-SEP\\n'
    sh -> client:  TOKEN START <pid> / TOKEN END <rc> / stdout bytes, separator / stderr bytes, separator

``$D`` is a private ``mktemp -d`` directory removed when the shell exits. TOKEN is 80 random bits
per shell, in no process's argv or environment, so no output can fake a frame: output is binary-safe
and exactly separated (cat runs only for non-empty files: a step costs one to three forks). A step's
stdin is a file written through the protocol (printf octal escapes) or by sftp, else /dev/null. Each
step is its own session (setsid), so a timeout or cancel kills its whole process group, from a side
channel (the shell itself is busy waiting).
"""

from __future__ import annotations

import re
import secrets
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POLL = 0.2  # seconds between checks of deadline/cancel while waiting for output
KILL_GRACE = 3.0  # after TERM, wait this long for the step to end before KILL; then as long again


class ShellLost(Exception):
    """The shell's channel closed (connection dropped, or the shell died)."""


class ShellWedged(Exception):
    """The step did not end even after SIGKILL: the shell must be discarded."""


@dataclass
class Raw:
    rc: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class Facts:
    """What the handshake learnt about the host."""

    uid: int
    user: str
    tmpdir: str  # the shell's private directory ($D)
    setsid: bool
    sudo: bool


def parse_id(text: str) -> tuple[int, str]:
    """``uid=1000(deploy) gid=...`` (the output of ``id``) -> (1000, "deploy")."""
    first = text.split()[0] if text.split() else ""
    m = re.match(r"uid=(\d+)(?:\(([^)]*)\))?", first)
    if not m:
        raise ValueError(f"unexpected output of id: {text[:80]!r}")
    return int(m[1]), m[2] or m[1]


def octal_format(data: bytes, *, all_bytes: bool = False) -> str:
    """A single-quoted printf format that prints exactly ``data`` (any bytes); ``all_bytes`` escapes
    printable ones too (for secrets: never readable even in a debug dump of the protocol)."""

    def esc(i: int, b: int) -> str:
        # a leading `-` is escaped too: printf would read a format starting with it as an option
        plain = not all_bytes and 32 <= b < 127 and b not in (37, 39, 92) and not (i == 0 and b == 45)
        return chr(b) if plain else f"\\{b:03o}"

    return "'" + "".join(esc(i, b) for i, b in enumerate(data)) + "'"


def printf_octal(data: bytes, target: str, chunk: int = 8192) -> str:
    """Shell lines that write ``data`` to ``target`` with the printf builtin only: the bytes never
    appear in any process's argv."""
    lines = []
    for i in range(0, max(len(data), 1), chunk):
        lines.append(f"printf {octal_format(data[i : i + chunk])} {'>' if i == 0 else '>>'}{target}")
    return "\n".join(lines)


class PersistentShell:
    """A long-lived ``/bin/sh`` on an exec channel. Not thread-safe: one step at a time."""

    def __init__(self, transport: Any, *, timeout: float, redact: Callable[[str], str] = lambda s: s):
        self.token = "RBK" + secrets.token_hex(10)
        self.redact = redact
        self._buf = bytearray()
        self._err = bytearray()
        self.chan = transport.open_session(timeout=timeout)
        try:
            # run by the login shell once (its rc files run once); `exec` leaves a plain sh
            self.chan.exec_command("exec /bin/sh")
            hello = (  # two forks on the host (mktemp, id); everything else is builtins
                '__rb_d=$(mktemp -d "${TMPDIR:-/tmp}/.runbook-XXXXXXXXXX") || exit 97\n'
                "trap 'rm -rf \"$__rb_d\"' EXIT; trap 'exit 129' HUP; trap 'exit 143' TERM\n"
                "if command -v setsid >/dev/null 2>&1; then __rb_ss=setsid; else __rb_ss=; fi\n"
                "if command -v sudo >/dev/null 2>&1; then __rb_su=1; else __rb_su=0; fi\n"
                f"printf '%s READY %s %s\\n%s\\n%s\\n' {self.token} "
                '"${__rb_ss:-none}" "$__rb_su" "$(id)" "$__rb_d"\n'
            )
            self.chan.sendall(hello.encode())
            deadline = time.monotonic() + timeout
            while True:
                line = self._readline(deadline)
                if line is None:
                    raise ShellLost(f"no answer from the remote shell within {timeout:g}s")
                parts = line.decode("utf-8", "replace").split()
                if len(parts) == 4 and parts[0] == self.token and parts[1] == "READY":
                    ident, tmpdir = self._readline(deadline), self._readline(deadline)
                    if ident is None or tmpdir is None:
                        raise ShellLost("the remote shell's handshake was cut short")
                    uid, user = parse_id(ident.decode("utf-8", "replace"))
                    self.facts = Facts(uid, user, tmpdir.decode(), parts[2] == "setsid", parts[3] == "1")
                    break
        except BaseException:
            self.chan.close()
            raise

    # ------------------------------------------------------------------------------------ reading
    def _fill(self, deadline: float) -> bool:
        """Receive more stdout into the buffer; False on timeout; ShellLost on EOF."""
        self._drain_stderr()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.chan.settimeout(min(POLL, remaining))
        try:
            data = self.chan.recv(1 << 16)
        except TimeoutError:
            return False
        except (socket.error, EOFError) as exc:  # noqa: UP024 - paramiko raises socket.error subclasses
            raise ShellLost(str(exc) or type(exc).__name__) from None
        if not data:
            self._drain_stderr()
            why = self.redact(bytes(self._err[-400:]).decode("utf-8", "replace").strip())
            raise ShellLost(f"the remote shell exited{': ' + why if why else ''}")
        self._buf += data
        return True

    def _drain_stderr(self) -> None:
        while self.chan.recv_stderr_ready():
            self._err += self.chan.recv_stderr(1 << 16)
            del self._err[:-4096]

    def _readline(self, deadline: float) -> bytes | None:
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return line
            if not self._fill(deadline) and time.monotonic() >= deadline:
                return None

    def _read_until(self, sep: bytes, stall: float = 60.0) -> bytes:
        """Bytes up to the separator (consumed). The separator carries the shell's random token, so
        no output contains it by accident."""
        last, start = time.monotonic(), 0
        while True:
            i = self._buf.find(sep, start)
            if i >= 0:
                out = bytes(self._buf[:i])
                del self._buf[: i + len(sep)]
                return out
            start = max(0, len(self._buf) - len(sep) + 1)
            if self._fill(last + stall):
                last = time.monotonic()
            elif time.monotonic() >= last + stall:
                raise ShellLost(f"output stalled for {stall:g}s")

    # ------------------------------------------------------------------------------------ running
    def run(
        self,
        body: str,
        *,
        stdin: bytes | None,
        timeout: float | None,
        cancelled: Callable[[], bool],
        kill: Callable[[int, str, bool], None],
        put_file: Callable[[str, bytes], None] | None = None,
    ) -> Raw:
        """Run one step. ``body`` is sh text run in a subshell with redirected stdio; it must end by
        exec-ing the step. ``kill(pid, signal, group)`` is called (from this thread) on timeout/cancel."""
        d = '"$__rb_d"'
        pre = ""
        if stdin is None:
            src = "/dev/null"
        else:
            src = f"{d}/i"
            if len(stdin) > 256 * 1024 and put_file is not None:
                put_file(f"{self.facts.tmpdir}/i", stdin)
            else:
                pre = printf_octal(stdin, f"{d}/i") + "\n"
        script = (
            f"{pre}(\n{body}\n) <{src} >{d}/o 2>{d}/e &\n"
            f"__rb_p=$!; printf '%s START %s\\n' {self.token} \"$__rb_p\"\n"
            f'wait "$__rb_p"; __rb_rc=$?\nprintf \'%s END %s\\n\' {self.token} "$__rb_rc"\n'
            f"[ -s {d}/o ] && cat {d}/o; printf '\\n%s-SEP\\n' {self.token}\n"
            f"[ -s {d}/e ] && cat {d}/e; printf '\\n%s-SEP\\n' {self.token}\n"
            f": >{d}/o; : >{d}/e{'; : >' + d + '/i' if stdin is not None else ''}\n"
        )
        self.chan.sendall(script.encode())
        start = time.monotonic()
        pid: int | None = None
        rc: int | None = None
        timed_out = was_cancelled = False
        kill_stage = 0
        next_kill = float("inf")
        while rc is None:
            now = time.monotonic()
            if kill_stage == 0:
                if timeout is not None and now - start >= timeout:
                    timed_out = True
                elif cancelled():
                    was_cancelled = True
                if timed_out or was_cancelled:
                    if pid is not None:
                        kill(pid, "TERM", self.facts.setsid)
                    kill_stage, next_kill = 1, now + KILL_GRACE
            elif now >= next_kill:
                if kill_stage == 2 or pid is None:
                    raise ShellWedged(f"the step (pid {pid}) did not end after it was killed")
                kill(pid, "KILL", self.facts.setsid)
                kill_stage, next_kill = 2, now + KILL_GRACE
            line = self._readline(now + POLL)
            if line is None:
                continue
            parts = line.split()
            if len(parts) == 3 and parts[0].decode(errors="replace") == self.token:
                if parts[1] == b"START":
                    pid = int(parts[2])
                elif parts[1] == b"END":
                    rc = int(parts[2])
        sep = f"\n{self.token}-SEP\n".encode()
        out = self._read_until(sep)
        err = self._read_until(sep)
        return Raw(rc, out, err, timed_out=timed_out, cancelled=was_cancelled)

    def close(self) -> None:
        try:
            if not self.chan.closed:
                self.chan.sendall(b"exit 0\n")
                self.chan.shutdown_write()
        except Exception:
            pass
        self.chan.close()


def kill_script(pid: int, signal: str, group: bool) -> str:
    """sh text that signals a step (its whole process group when it is a session of its own)."""
    if pid <= 1:
        raise ValueError(f"refusing to signal pid {pid}")
    if group:
        return f"kill -s {signal} -- -{pid} 2>/dev/null || kill -s {signal} {pid} 2>/dev/null; true"
    return f"kill -s {signal} {pid} 2>/dev/null; true"


def quote(s: str) -> str:
    return shlex.quote(s)
