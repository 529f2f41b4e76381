"""What a step asks for. Step kinds are generators that *yield* these and get the result back.

Steps never perform I/O themselves; the executor (runbook.execute) performs each action through the
host's transport — or, in a dry-run, performs only the read-only ones and records the rest.

    def run(self, args, ctx):
        res = yield Run(Command.shell("df -Pk /"))          # -> CommandResult
        data = yield ReadFile("/proc/meminfo")              # -> bytes | None
        return Outcome.success("enough memory")

Each action documents what is sent back by ``gen.send(...)``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from runbook.actions.commands import Command
from runbook.render.secrets import collect_secrets, is_secret_header


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    timed_out: bool = False
    dry_run: bool = False  # True when the command was not run (dry-run of a mutating command)
    # streams too long to keep whole: {"stdout": {"bytes": total, "kept": n, "sha256": of all}, ...}
    elided: Mapping[str, Mapping[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out


@dataclass(frozen=True)
class FileStat:
    path: str
    exists: bool
    is_dir: bool = False
    is_link: bool = False
    mode: int = 0  # permission bits only, e.g. 0o644
    uid: int = -1
    gid: int = -1
    size: int = 0
    owner: str | None = None
    group: str | None = None


# ----------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    """Base class. ``mutating`` actions are not performed in a dry-run (or in preflight)."""

    @property
    def mutating(self) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        """Secret values this action carries (credentials in headers, masked command parts): the
        executor registers them before it shows or performs the action, so they are masked
        wherever they come back (a server echoing a header, a command printing its argument)."""
        return ()


@dataclass(frozen=True)
class Run(Action):
    """Run a command on the host. Sends back a CommandResult (never raises for rc != 0)."""

    command: Command
    timeout: float | None = None
    changes: bool = True  # False for read-only probes (they run in dry-run and preflight)

    @property
    def mutating(self) -> bool:
        return self.changes

    def secrets(self) -> tuple[str, ...]:
        return self.command.secrets()


@dataclass(frozen=True)
class ReadFile(Action):
    """Read a file on the host. Sends back bytes, or None if it does not exist."""

    path: str
    become: bool = False


@dataclass(frozen=True)
class Stat(Action):
    """Stat a path on the host (lstat). Sends back a FileStat (exists=False when missing)."""

    path: str
    become: bool = False


@dataclass(frozen=True)
class WriteFile(Action):
    """Atomically write a file on the host (temp file + rename). Sends back None.

    In a dry-run the executor shows a unified diff against the current content instead.
    ``mode`` is e.g. 0o644 (None keeps the existing mode, or the umask default for a new file).
    """

    path: str
    content: bytes
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    become: bool = False

    @property
    def mutating(self) -> bool:
        return True


@dataclass(frozen=True)
class Http(Action):
    """An HTTP request made *from the host's point of view* (a URL on 127.0.0.1 means the host's
    loopback; over SSH it is tunnelled). Sends back HttpResponse; connection errors come back as
    HttpResponse(status=0, error="...") rather than raising."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float = 10.0
    changes: bool = False  # True for requests that change something (POST to a deploy API ...)
    validate_certs: bool = True
    # how the request is shown (dry-run plan, messages) instead of its URL, e.g. when the URL's path
    # is a secret (webhooks); "POST https://hooks.example.com/…" or just the URL part
    display: str | None = None
    # read at most this many bytes of the body (None: all of it); a longer body is not read on:
    # HttpResponse.too_large says so, and its body is empty
    max_body: int | None = None

    def shown(self) -> str:
        """``METHOD URL`` as a human may see it (``display`` when set; never the URL's userinfo)."""
        if self.display is None:
            return f"{self.method} {without_userinfo(self.url)}"
        if self.display.split(" ", 1)[0].upper() == self.method.upper():
            return self.display
        return f"{self.method} {self.display}"

    @property
    def mutating(self) -> bool:
        return self.changes

    def request_headers(self) -> dict[str, str]:
        """The headers to send: ``user:password@`` in the URL becomes ``Authorization: Basic``
        (unless the request sets Authorization itself); it never goes into ``Host:``."""
        headers = dict(self.headers)
        user, password = userinfo(self.url)
        if (user or password) and not any(k.lower() == "authorization" for k in headers):
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return headers

    def secrets(self) -> tuple[str, ...]:
        out: list[str] = []
        _, password = userinfo(self.url)
        if password:
            out += [password, quote(password, safe="")]
        for name, value in self.request_headers().items():
            if is_secret_header(name):
                out += [value, *value.split(None, 1)[1:]]  # "Bearer TOKEN": TOKEN alone too
        return tuple(v for v in out if v)


def userinfo(url: str) -> tuple[str, str]:
    """(user, password) of a URL's ``user:password@`` (percent-decoded; empty when absent)."""
    try:
        parts = urlsplit(url)
        return unquote(parts.username or ""), unquote(parts.password or "")
    except ValueError:
        return "", ""


def without_userinfo(url: str) -> str:
    """The URL without ``user:password@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    elapsed: float = 0.0
    # the body was longer than the request's max_body: its announced length (Content-Length, nothing
    # read), else the bytes read before reading stopped (max_body + 1); the body itself is dropped
    too_large: int | None = None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Tunnel(Action):
    """Reach ``host:port`` as seen from the target host. Sends back (local_host, local_port) that the
    control machine can connect to for the rest of the step (identity on the local transport, an
    SSH direct-tcpip forward on ssh). Used by executor-side clients (PostgreSQL, Redis)."""

    host: str
    port: int


@dataclass(frozen=True)
class Operation:
    """One operation of a service client (a PostgreSQL query, a Redis PING), as a step names it.

    ``target`` is where the implementation lives, ``"package.module:function"``: imported on the
    control machine when a step first calls it (runbook's own are in runbook.execute.clients; a
    plug-in package may ship its own). The function is ``fn(params, transport, stack, cancel)``: it
    reaches the service through ``transport.tunnel`` and returns what the step gets back. ``library``
    is the optional Python package it needs: when missing, the step fails naming the extra that
    installs it (runbook.errors.require_extra) instead of an ImportError. ``name`` is how a dry-run's
    plan and messages show it (``postgres.migrate``).

    Declare it once, beside the step kind that calls it::

        PING = Operation("redis.ping", "runbook.execute.clients.redis:ping", library="redis")
        res = yield Client(PING, {"url": url})
    """

    name: str
    target: str
    library: str | None = None
    install: str | None = None  # what to pip install when ``library`` is missing (default: runbook's extra)
    streams: bool = False  # it takes a ``_note`` callable in its params: live progress lines

    @property
    def service(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class Client(Action):
    """Call a service client operation (``op``, an Operation) with ``params``; what it returns is
    sent back. ``changes`` marks operations that modify state (not performed in a dry-run)."""

    op: Operation
    params: Mapping[str, Any] = field(default_factory=dict)
    changes: bool = False
    # one call for every host of the batch that reaches this step (the client's BATCH_OPS), each
    # host getting its own result: the hosts meet in runbook.execute.gather
    batched: bool = False

    @property
    def mutating(self) -> bool:
        return self.changes

    def secrets(self) -> tuple[str, ...]:
        """Passwords of DSNs/URLs in the parameters, and credential-named parameters."""
        return tuple(collect_secrets(dict(self.params)))  # also nested: ansible extravars


@dataclass(frozen=True)
class Sleep(Action):
    """Wait (interruptible). Sends back None. Skipped (not slept) in a dry-run."""

    seconds: float


@dataclass(frozen=True)
class Snapshot(Action):
    """Record what a mutating step is about to change, *before* changing it. ``data`` must be
    JSON-serialisable (bytes: base64 them). The engine persists it (state file + audit) and later
    passes it to the step kind's ``undo``. Sends back None."""

    data: Mapping[str, Any]


@dataclass(frozen=True)
class Planned(Action):
    """A change the step found it would make (a check mode's answer: Ansible's --check --diff),
    shown in a plan like a file's diff. Sends back None."""

    summary: str
    diff: str = ""


@dataclass(frozen=True)
class Note(Action):
    """A line for the operator (shown live, kept in the step result). Sends back None."""

    text: str
