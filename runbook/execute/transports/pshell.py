"""One persistent POSIX ``sh`` per host: every step runs in a fresh subshell of it, so a step costs a
fork or two on the host instead of a new SSH session plus the login shell's rc files (``pyenv init``
in ~/.bashrc is ~150 ms per command on real hosts).

Protocol (a step's output streams straight through: nothing is kept in a file on the host):

    client -> sh:  ( <env/cd/become>; exec setsid /bin/sh -c '<script>' ) <IN &
                   printf '%s START %s\\n' TOKEN "$!"; wait "$!"
                   printf '%s END %s\\n' TOKEN "$?"; printf '%s END\\n' TOKEN >&2
    sh -> client:  stdout: the step's stdout with the frames ``TOKEN START <pid>`` and ``TOKEN END
                   <rc>`` cut into it; stderr: the step's stderr, then ``TOKEN END``

TOKEN is ~280 random bits per shell (``new_token``), in no process's argv or environment, so no
output can fake a frame; frames are found anywhere in the stream (START is written while the step
may be writing too: one write(), so it lands whole between two of the step's writes and cutting it
out restores the step's bytes exactly). Output is binary-safe; only a bounded head and tail of it is kept (Capture).

``$D`` is a private ``mktemp -d`` directory removed when the shell exits; its name carries the boot
id and the shell's pid, so a later shell removes the ones whose shell is gone (killed connections,
SIGKILLed shells: see ``LEFTOVERS``). A step's stdin is a file there, written through the protocol
(printf octal escapes) or by sftp, else /dev/null. Each step is its own session (setsid), so a
timeout or cancel kills its whole process group, from a side channel (the shell itself is busy).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import select
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runbook.execute.transports.capture import Capture

POLL = 0.2  # seconds between checks of deadline/cancel while waiting for output
KILL_GRACE = 3.0  # after TERM, wait this long for the step to end before KILL; then as long again
# bytes taken from a channel's buffer at once: more than it can hold (the channel's window, 2 MiB
# by default), so a read always takes all of it. A read of less than what is buffered makes
# paramiko move the rest to the front of its buffer (an array): with a 128 KiB read size and the
# buffer full (the reader thread ahead of us) that moved ~4-7 GB per GB received, enough to keep
# us behind once we fell behind.
READ = 1 << 24
STALL = 60.0  # after a step ended, the longest silence before its stderr's END frame


class ShellLost(Exception):
    """The shell's channel closed (connection dropped, or the shell died)."""


class ShellWedged(Exception):
    """The step did not end even after SIGKILL: the shell must be discarded."""


@dataclass
class Raw:
    rc: int
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""
    timed_out: bool = False
    cancelled: bool = False
    out: Capture | None = None  # the streams as received (sizes, digests, bounded head and tail)
    err: Capture | None = None

    @property
    def stdout(self) -> bytes:
        return self.out.value() if self.out is not None else self.stdout_bytes

    @property
    def stderr(self) -> bytes:
        return self.err.value() if self.err is not None else self.stderr_bytes


# The frames are looked for in every byte a step prints (``bytes.find``), so the token is made for
# that search to skip far: CPython's search skips up to the token's length at each miss, by a table
# of the low 6 bits of a byte, so it skips a byte whose class is not in the token's tail. Hex digits
# (the classes of digits, lowercase letters and punctuation) made it crawl through text and `x` at
# 0.8-3 GB/s; 64 uppercase letters (classes shared only by control bytes and some UTF-8 bytes; not
# I, J, M: tab, newline, carriage return; not C, P, Q: the first bytes of accented Latin and of
# Cyrillic) let it run at ~11-12 GB/s over text, zeros or `x`.
TOKEN_LETTERS = "ABDEFGHKLNORSTUVWXYZ"
TOKEN_LENGTH = 64


def new_token() -> str:
    """A frame token: ``RBK`` and 64 random letters of TOKEN_LETTERS (~276 bits)."""
    return "RBK" + "".join(secrets.choice(TOKEN_LETTERS) for _ in range(TOKEN_LENGTH))


def _discard(data: bytes) -> None:
    """Output that arrives between steps (a background child still writing): dropped."""


class Frames:
    """Cuts the shell's frames (``TOKEN WORD [ARG]\\n``) out of a stream; the rest goes to ``sink``."""

    def __init__(self, token: str):
        self.token = token.encode()
        self.sink: Callable[[bytes], None] = _discard
        self.switch: Callable[[bytes], None] | None = None  # the sink after a READY frame
        self._pending = bytearray()

    def drop(self) -> None:
        """Forget bytes held back as a possible frame start (between steps: nobody's output)."""
        self._pending.clear()

    def feed(self, data: bytes) -> list[list[bytes]]:
        if not data:
            return []
        if self._pending:
            data = bytes(self._pending) + data
            self._pending.clear()
        token, keep = self.token, len(self.token) - 1
        frames: list[list[bytes]] = []
        start = 0
        while True:
            i = data.find(token, start)
            if i < 0:  # hold back what could be the start of a frame cut by the chunk's end
                cut = _held_back(data, token, max(start, len(data) - keep))
                if cut > start:
                    self.sink(data[start:cut])
                self._pending += data[cut:]
                return frames
            if i > start:
                self.sink(data[start:i])
            nl = data.find(b"\n", i + len(token))
            if nl < 0:  # the rest of the frame is still on its way
                self._pending += data[i:]
                return frames
            frame = data[i + len(token) : nl].split()
            if frame == [b"READY"] and self.switch is not None:
                self.sink, self.switch = self.switch, None
            frames.append(frame)
            start = nl + 1


def _held_back(data: bytes, token: bytes, at: int) -> int:
    """Where the part of ``data`` that may be the start of a token cut by the chunk's end begins:
    the first position from ``at`` whose rest is a prefix of ``token`` (else the end). Holding back
    only that (usually nothing) saves copying every chunk into the next one."""
    first = token[:1]
    j = data.find(first, at)
    while j >= 0:
        if token.startswith(data[j:]):
            return j
        j = data.find(first, j + 1)
    return len(data)


@dataclass(frozen=True)
class Facts:
    """What the handshake learnt about the host."""

    uid: int
    user: str
    tmpdir: str  # the shell's private directory ($D)
    setsid: bool
    sudo: bool


# Remove the private directories of shells that are gone: ``.runbook-<boot id>-<pid>-<random>``
# whose boot id (its first 8 hex digits) is another boot's, or whose pid is not running (``kill -0``).
# Only the login user's own directories (``-O``: so the pid was one of the user's own shells); any
# other name is left alone. Builtins only, plus rm for what is removed.
_HEX = "[0-9a-f]"
LEFTOVERS = (
    "__rb_b=00000000; [ -r /proc/sys/kernel/random/boot_id ] && "
    "read -r __rb_b </proc/sys/kernel/random/boot_id; __rb_b=${__rb_b%%-*}\n"
    'for __rb_x in "${TMPDIR:-/tmp}"/.runbook-*-*-*; do\n'
    '  [ -d "$__rb_x" ] && [ -O "$__rb_x" ] || continue\n'
    '  __rb_n=${__rb_x##*/.runbook-}; __rb_xb=${__rb_n%%-*}; __rb_n=${__rb_n#*-}; __rb_xp=${__rb_n%%-*}\n'
    f"  case $__rb_xb in {_HEX * 8}) ;; *) continue;; esac\n"
    '  case $__rb_xp in ""|*[!0-9]*) continue;; esac\n'
    '  [ "$__rb_xb" = "$__rb_b" ] && kill -0 "$__rb_xp" 2>/dev/null && continue\n'
    '  rm -rf -- "$__rb_x"\n'
    "done\n"
)


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


class ShellNotStarted(ShellLost):
    """The shell exited before its handshake ended: nothing sent after the hello ran (sh runs its
    input in order and the hello ends by printing READY), so the step may run another way."""


class PersistentShell:
    """A long-lived ``/bin/sh`` on an exec channel. Not thread-safe: one step at a time.

    Start-up costs one round trip after the channel is open: the exec request, the hello and the
    first step go out together, without waiting for the exec's reply or the hello's READY (read
    back before the step's own output: ``facts`` or ``run`` wait for it)."""

    def __init__(self, transport: Any, *, timeout: float, redact: Callable[[str], str] = lambda s: s):
        self.token = new_token()
        self.redact = redact
        self.timeout = timeout
        self._buf = bytearray()
        self._err = bytearray()
        self._out, self._errs = Frames(self.token), Frames(self.token)
        self._errs.sink = self._hello_err  # until the hello's READY frame on stderr (Frames.switch)
        self._facts: Facts | None = None
        # frames read with the hello's answer (stdout, stderr): the first step's, for run() to take
        self._early_frames: tuple[list[list[bytes]], list[list[bytes]]] = ([], [])
        self._early: tuple[list[list[bytes]], list[list[bytes]]] | None = None
        self.broken = False  # left in the middle of a step (interrupted): must not be reused
        self.chan = transport.open_session(timeout=timeout)
        try:
            # run by the login shell once (its rc files run once); `exec` leaves a plain sh. The
            # request's reply is not waited for: a refusal closes the channel (paramiko), which the
            # handshake sees as the shell gone
            _exec_no_wait(self.chan, "exec /bin/sh")
            hello = (  # two forks on the host (mktemp, id); everything else is builtins
                LEFTOVERS
                + '__rb_d=$(mktemp -d "${TMPDIR:-/tmp}/.runbook-$__rb_b-$$-XXXXXXXXXX") || exit 97\n'
                "trap 'rm -rf \"$__rb_d\"' EXIT; trap 'exit 129' HUP; trap 'exit 143' TERM\n"
                "if command -v setsid >/dev/null 2>&1; then __rb_ss=setsid; else __rb_ss=; fi\n"
                "if command -v sudo >/dev/null 2>&1; then __rb_su=1; else __rb_su=0; fi\n"
                f"printf '%s READY\\n' {self.token} >&2\n"
                f"printf '%s READY %s %s\\n%s\\n%s\\n' {self.token} "
                '"${__rb_ss:-none}" "$__rb_su" "$(id)" "$__rb_d"\n'
            )
            self.chan.sendall(hello.encode())
        except BaseException:
            self.chan.close()
            raise

    def _hello_err(self, data: bytes) -> None:
        self._err += data
        del self._err[:-4096]

    @property
    def ready(self) -> bool:
        return self._facts is not None

    @property
    def facts(self) -> Facts:
        """What the hello learnt (waits for its READY: at most ``timeout``)."""
        if self._facts is None:
            self._handshake()
        assert self._facts is not None
        return self._facts

    def _handshake(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                line = self._readline(deadline)
                if line is None:
                    raise ShellLost(f"no answer from the remote shell within {self.timeout:g}s")
                parts = line.decode("utf-8", "replace").split()
                if len(parts) == 4 and parts[0] == self.token and parts[1] == "READY":
                    ident, tmpdir = self._readline(deadline), self._readline(deadline)
                    if ident is None or tmpdir is None:
                        raise ShellLost("the remote shell's handshake was cut short")
                    uid, user = parse_id(ident.decode("utf-8", "replace"))
                    self._facts = Facts(uid, user, tmpdir.decode(), parts[2] == "setsid", parts[3] == "1")
                    break
        except ShellLost as exc:
            self.broken = True
            if type(exc) is ShellLost and (self.chan.closed or self.chan.eof_received):
                raise ShellNotStarted(str(exc)) from None
            raise
        rest, self._buf = bytes(self._buf), bytearray()
        self._early_frames[0].extend(self._out.feed(rest))  # after the hello: the first step's output
        self._early = self._early_frames

    # ------------------------------------------------------------------------------------ reading
    def _recv(self, wait: float) -> tuple[bytes, bytes]:
        """Whatever arrived on stdout and stderr within ``wait`` seconds; ShellLost on EOF."""
        chan = self.chan
        if not (chan.recv_ready() or chan.recv_stderr_ready()):
            if chan.closed or chan.eof_received:
                raise ShellLost(self._exit_reason())
            with contextlib.suppress(OSError, ValueError):
                select.select([chan], [], [], max(0.0, wait))
        out = err = b""
        try:
            if chan.recv_stderr_ready():
                err = chan.recv_stderr(READ)
            if chan.recv_ready():
                out = chan.recv(READ)
                if not out:
                    raise ShellLost(self._exit_reason())
        except (socket.error, EOFError) as exc:  # noqa: UP024 - paramiko raises socket.error subclasses
            raise ShellLost(str(exc) or type(exc).__name__) from None
        if not out and not err and (chan.closed or (chan.eof_received and not chan.recv_ready())):
            raise ShellLost(self._exit_reason())
        return out, err

    def _exit_reason(self) -> str:
        why = self.redact(bytes(self._err[-400:]).decode("utf-8", "replace").strip())
        return f"the remote shell exited{': ' + why if why else ''}"

    def _fill(self, deadline: float) -> bool:
        """Receive more stdout into the buffer (handshake only); False on timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        out, err = self._recv(min(POLL, remaining))
        # the hello's stderr, then (after its READY frame) the first step's
        self._early_frames[1].extend(self._errs.feed(err))
        self._buf += out
        return bool(out)

    def _readline(self, deadline: float) -> bytes | None:
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return line
            if not self._fill(deadline) and time.monotonic() >= deadline:
                return None

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
        limit: int | None = None,
    ) -> Raw:
        """Run one step. ``body`` is sh text run in a subshell with redirected stdin; it must end by
        exec-ing the step. Its stdout and stderr stream straight onto the channel's two streams (never
        a file on the host); ``limit`` bounds what is kept of each (see Capture). ``kill(pid,
        signal, group)`` is called (from this thread) on timeout/cancel."""
        if self.broken:
            raise ShellLost("the shell was left in the middle of a step")
        d = '"$__rb_d"'
        pre = ""
        if stdin is None:
            src = "/dev/null"
        else:
            src = f"{d}/i"
            if len(stdin) > 256 * 1024 and put_file is not None:
                put_file(f"{self.facts.tmpdir}/i", stdin)  # (waits for the hello)
            else:
                pre = printf_octal(stdin, f"{d}/i") + "\n"
        tok = self.token
        script = (
            f"{pre}(\n{body}\n) <{src} &\n"
            f"__rb_p=$!; printf '%s START %s\\n' {tok} \"$__rb_p\"\n"
            f'wait "$__rb_p"; __rb_rc=$?\n'
            f"printf '%s END %s\\n' {tok} \"$__rb_rc\"; printf '%s END\\n' {tok} >&2\n"
            + (f": >{d}/i\n" if stdin is not None else "")
        )
        ready = self.ready
        while ready and (self.chan.recv_ready() or self.chan.recv_stderr_ready()):  # a past step's
            o, e = self._recv(0)  # background children wrote after it ended: not this step's output
            self._out.feed(o)
            self._errs.feed(e)
        if ready:
            self._out.drop()
            self._errs.drop()
            self._early = None  # (the hello was answered before any step: nothing of a step's)
        out, err = Capture(limit), Capture(limit)
        self._out.sink = out.write
        if ready:
            self._errs.sink = err.write
        else:  # the first step, sent behind the hello: its stderr begins after the hello's READY
            self._errs.switch = err.write
        self.broken = True  # until both END frames are read, the shell is mid-step
        pid: int | None = None
        try:
            start = time.monotonic()
            self.chan.sendall(script.encode())
            if not ready:
                self._handshake()  # ShellNotStarted: the step did not run
                start = time.monotonic()  # the step's time starts once the shell has started
            rc: int | None = None
            err_done = False
            timed_out = was_cancelled = False
            kill_stage = 0
            next_kill = float("inf")
            last = start
            while rc is None or not err_done:
                now = time.monotonic()
                if rc is None and kill_stage == 0:
                    if timeout is not None and now - start >= timeout:
                        timed_out = True
                    elif cancelled():
                        was_cancelled = True
                    if timed_out or was_cancelled:
                        if pid is not None:
                            kill(pid, "TERM", self.facts.setsid)
                        kill_stage, next_kill = 1, now + KILL_GRACE
                elif rc is None and now >= next_kill:
                    if kill_stage == 2 or pid is None:
                        raise ShellWedged(f"the step (pid {pid}) did not end after it was killed")
                    kill(pid, "KILL", self.facts.setsid)
                    kill_stage, next_kill = 2, now + KILL_GRACE
                elif rc is not None and now - last > STALL:
                    raise ShellLost(f"the step's stderr did not end within {STALL:g}s of its exit")
                if self._early is not None:  # frames that came in with the hello's answer
                    out_frames, err_frames = self._early
                    self._early = None
                else:
                    o, e = self._recv(POLL)
                    if o or e:
                        last = now
                    out_frames, err_frames = self._out.feed(o), self._errs.feed(e)
                for frame in out_frames:
                    if frame[:1] == [b"START"] and len(frame) == 2:
                        pid = int(frame[1])
                    elif frame[:1] == [b"END"] and len(frame) == 2:
                        rc = int(frame[1])
                for frame in err_frames:
                    if frame == [b"END"]:
                        err_done = True
            self.broken = False
        except BaseException:
            if pid is not None and self.broken:  # Ctrl-C, a lost channel ...: never leave it running
                with contextlib.suppress(Exception):
                    kill(pid, "KILL", self.facts.setsid)
            raise
        finally:
            self._out.sink = self._errs.sink = _discard
            self._errs.switch = None
        return Raw(rc, timed_out=timed_out, cancelled=was_cancelled, out=out, err=err)

    def close(self) -> None:
        try:
            if not self.chan.closed:
                self.chan.sendall(b"exit 0\n")
                self.chan.shutdown_write()
        except Exception:
            pass
        self.chan.close()


def _exec_no_wait(chan: Any, command: str) -> None:
    """paramiko's Channel.exec_command without waiting for the server's reply (one round trip)."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("exec")
    m.add_boolean(True)  # a failure reply closes the channel (Channel._request_failed)
    m.add_string(command)
    chan._event_pending()
    chan.transport._send_user_message(m)


def kill_script(pid: int, signal: str, group: bool) -> str:
    """sh text that signals a step (its whole process group when it is a session of its own)."""
    if pid <= 1:
        raise ValueError(f"refusing to signal pid {pid}")
    if group:
        return f"kill -s {signal} -- -{pid} 2>/dev/null || kill -s {signal} {pid} 2>/dev/null; true"
    return f"kill -s {signal} {pid} 2>/dev/null; true"


def quote(s: str) -> str:
    return shlex.quote(s)
