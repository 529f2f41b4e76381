"""The one narrow interface every transport implements (local, ssh, ansible).

Transports run commands and move bytes; they know nothing about steps, runbooks or output.
All methods are blocking and thread-safe per host (the engine uses one transport per host, from one
thread at a time); ``cancel`` may be called from another thread to interrupt a running command.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook.actions import CommandResult, FileStat
from runbook.actions.commands import Command
from runbook.errors import ValidationError
from runbook.model import become as become_vars
from runbook.model import connection
from runbook.model.become import Become
from runbook.model.connection import connection_is_native, native_connection
from runbook.model.hostpattern import connection_for
from runbook.model.values import port_problem, truthy


@dataclass(frozen=True)
class HostSpec:
    """How to reach one host: the inventory's connection variables, resolved."""

    name: str  # inventory_hostname
    address: str  # ansible_host or name
    port: int | None = None
    user: str | None = None
    connection: str = "ssh"  # ansible_connection: ssh | local | paramiko | ansible
    private_key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    become: bool = False
    become_user: str = "root"
    become_password: str | None = field(default=None, repr=False)
    python: str | None = None
    vars: Mapping[str, Any] | None = field(default=None, repr=False)  # all host vars (transport options)

    @property
    def native_transport(self) -> bool:
        """Does runbook have a transport of its own for this host's ansible_connection? (False: a
        plugin such as community.docker.docker; only Ansible-module steps can run on the host.)"""
        return connection_is_native(self.connection)

    @classmethod
    def from_vars(cls, name: str, hv: Mapping[str, Any]) -> HostSpec:
        def pick(what: str, default: Any = None) -> Any:
            return connection.pick(hv, what, default)

        def become_var(what: str, default: Any = None) -> Any:
            value = become_vars.pick(hv, what)
            return default if value is None else value

        raw = str(pick("connection", default=""))
        conn = (native_connection(raw) or raw.strip()) if raw else connection_for(name, hv)
        port = pick("port")
        problem = port_problem(port) if port is not None else None
        if problem:
            raise ValidationError(
                f"host {name}: ansible_port {problem}",
                hint="fix ansible_port (or ansible_ssh_port) for this host in the inventory",
            )
        return cls(
            name=name,
            address=str(pick("host", default=name)),
            port=int(port) if port is not None else None,
            user=pick("user"),
            connection=conn,
            private_key_file=pick("private_key_file"),
            password=pick("password"),
            become=truthy(become_var("become", default=False)),
            become_user=str(become_var("user", default="root")),
            become_password=become_var("password"),
            python=pick("python"),
            vars=hv,
        )


def output_limit(spec: HostSpec, option: object = None) -> int:
    """Bytes kept per output stream: the host's ``runbook_max_output``, else the run's --max-output,
    else $RUNBOOK_MAX_OUTPUT, else 1 MiB."""
    from runbook.errors import TransportError
    from runbook.execute.transports.capture import default_limit, parse_size

    value = (spec.vars or {}).get("runbook_max_output") or option
    try:
        return parse_size(value) if value not in (None, "") else default_limit()
    except ValueError as exc:
        raise TransportError(f"host {spec.name}: bad output limit: {exc}") from None


class Transport(ABC):
    """Run commands and move files on one host."""

    def __init__(self, spec: HostSpec, *, max_output: object = None):
        self.spec = spec
        self.output_limit = output_limit(spec, max_output)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def unreachable(self) -> str | None:
        """Why the host cannot be reached (connection lost, a new one failed), else None."""
        return None

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the connection (idempotent). Raises TransportError (or HostKeyError) on failure."""

    def dial_early(self) -> None:  # noqa: B027 - optional hook
        """Begin, in the background, what connect() can begin before warm_up's imports (the SSH
        transport: its TCP connect). Whatever connect() does not use is closed by close/abandon."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Import what connect() needs, in the caller's thread (before connects start in others)."""

    connect_bound: float = 120.0  # the longest connect() can take (a caller waiting elsewhere)

    def abandon(self) -> None:
        """Give up on this transport from another thread, even while connect() is under way there:
        the connect ends (failing) and nothing it opened stays open. Never waits."""
        self.close()

    @abstractmethod
    def run(
        self, command: Command, *, timeout: float | None = None, redact: Callable[[str], str] | None = None
    ) -> CommandResult:
        """Run a command to completion. rc != 0 is a result, not an exception; a timeout returns
        rc=124 with timed_out=True; a lost connection raises TransportError. Output streams in; of
        each stream at most ``output_limit`` bytes are kept (head and tail, see capture.Capture),
        cut where ``redact`` leaves no partial secret."""

    @abstractmethod
    def read_file(self, path: str, *, become: bool | Become = False) -> bytes | None:
        """Content of a file, or None if it does not exist."""

    @abstractmethod
    def stat(self, path: str, *, become: bool | Become = False) -> FileStat:
        """lstat() of a path (exists=False when missing)."""

    @abstractmethod
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
        """Atomically replace a file (temp file in the same directory + rename). ``become``: True
        (the host's become user) or a Become (that user, through that method): the file is written
        by that user, with its permissions, and belongs to it."""

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        """An address on the control machine that reaches host:port as seen from the target."""
        yield (host, port)

    def cancel(self) -> None:  # noqa: B027 - optional hook
        """Interrupt the running command, if any (called from another thread)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""
