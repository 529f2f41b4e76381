"""Per-host execution context: variables, transport, stats and what was completed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook.errors import TransportError
from runbook.execute.faults import debug_log
from runbook.execute.state import HostState
from runbook.execute.transports import HostSpec, Transport
from runbook.execute.transports.pool import Connections
from runbook.render.templar import LazyVars


@dataclass
class StepRecord:
    """One step's result on one host, for the recap, JSON and JUnit output."""

    phase: str
    index: int
    name: str
    module: str
    outcome: str  # ok | changed | failed | skipped | rolled_back
    rc: int | None = None
    duration: float = 0.0
    msg: str = ""
    command: str | None = None
    stdout: str = ""
    stderr: str = ""
    planned: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 1
    error: str | None = None  # "render": a template or argument problem, not the host's
    elided: list[dict[str, Any]] = field(default_factory=list)  # output cut: full sizes and sha256

    def redact(self, redact: Callable[[str], str]) -> None:
        """Mask every known secret in what the record shows (again at the end of a run: a secret
        learnt after the step ended is masked in the JSON and JUnit output too)."""
        self.name = redact(self.name)
        self.msg = redact(self.msg)
        self.stdout = redact(self.stdout)
        self.stderr = redact(self.stderr)
        self.command = redact(self.command) if self.command else None
        self.planned = [{k: redact(v) if isinstance(v, str) else v for k, v in p.items()} for p in self.planned]

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "index": self.index,
            "name": self.name,
            "module": self.module,
            "outcome": self.outcome,
            "rc": self.rc,
            "duration": round(self.duration, 3),
            "msg": self.msg,
            "command": self.command,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "planned": self.planned,
            "attempts": self.attempts,
        }


STAT_KEYS = ("ok", "changed", "failed", "skipped", "rolled_back", "unreachable")


@dataclass
class HostRun:
    name: str
    spec: HostSpec
    base_vars: LazyVars
    state: HostState
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # registered results and set_fact
    extra_vars: Mapping[str, Any] = field(default_factory=dict)  # -e: highest precedence
    play_var_names: tuple[str, ...] = ()  # the runbook's `vars:` and -e names (ansible.playbook)
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_KEYS, 0))
    records: list[StepRecord] = field(default_factory=list)
    failed: bool = False
    failure: str = ""
    unreachable: bool = False
    changed_anything: bool = False
    render_error: bool = False  # the failure is a template/argument problem (dry-run: exit 2)
    in_phase: bool = False  # running the current phase's steps (run_once waits for the first host)
    started: bool = False  # its thread has started the current phase (batched steps: gather)
    position: tuple[int, int, int] | None = None  # (step, loop item, attempt) it is at in the phase
    refused: bool = False  # failed before changing anything: lock held, host key, unreachable, denied
    rollback_status: str | None = None  # None | ok | failed
    rollback_problems: list[str] = field(default_factory=list)
    notified: dict[str, None] = field(default_factory=dict)  # handlers to run (in notify order)  # what a failed rollback left (host, step, diff)
    connections: Connections | None = None  # where its transport comes from (the run's)
    connect_error: str | None = None  # why the last attempt to connect failed
    _transport: Transport | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def changed(self) -> bool:
        """Did this host change anything (this run, or the run it resumes) not undone yet?"""
        return self.changed_anything or any(
            e.phase == "steps" and e.status != "rolled_back" for e in self.state.entries
        )

    def transport(self) -> Transport:
        """The host's transport, connected on first use (one connection reused for the run)."""
        with self._lock:
            if self._transport is None:
                if self.connections is None:
                    self.connections = Connections(self.transport_options)
                log = debug_log()
                if log is not None:
                    log.debug("connecting: %s", reached_by(self.spec))  # -vvv shows it
                try:
                    t = self.connections.take(self.spec)  # connected early, or None
                except TransportError as exc:
                    self.connect_error = exc.message
                    raise
                if t is None:
                    t = self.connections.make(self.spec)
                    try:
                        t.connect()
                    except TransportError as exc:
                        self.connect_error = exc.message
                        raise
                self.connect_error = None
                self._transport = t
            return self._transport

    @property
    def output_limit(self) -> int:
        """Bytes of output kept per stream on this host (the transport's rule: base.output_limit)."""
        from runbook.execute.transports.base import output_limit

        t = self._transport
        return t.output_limit if t is not None else output_limit(self.spec, self.transport_options.get("max_output"))

    @property
    def down(self) -> str | None:
        """Why the host cannot be reached now (its connection was lost and could not be made
        again), or None."""
        t = self._transport
        return self.connect_error if t is None else t.unreachable

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                try:
                    self._transport.close()
                finally:
                    self._transport = None

    def vars(
        self, step_vars: Mapping[str, Any] | None = None, loop: Mapping[str, Any] | None = None
    ) -> LazyVars:
        """Variables for one step: extra vars > loop item > registered/facts > step vars > the rest."""
        return self.base_vars.child(
            (self.extra_vars, False),
            (loop or {}, True),
            (self.facts, True),
            (step_vars or {}, False),
        )


def reached_by(spec: Any) -> str:
    """How a host is reached (transport, address, port, user, key; never a password): -vvv."""
    conn = getattr(spec, "connection", "?")
    if conn == "local":
        return f"{spec.name}: local (this machine, no SSH)"
    who = f"{spec.user}@" if getattr(spec, "user", None) else ""
    port = f":{spec.port}" if getattr(spec, "port", None) else ""
    key = f", key {spec.private_key_file}" if getattr(spec, "private_key_file", None) else ""
    return f"{spec.name}: {conn} {who}{spec.address}{port}{key}"
