"""Where a run's connections are made: the one home of "a host's transport, connected".

``make(spec)`` makes a host's transport (with the run's transport options, or the run's transport
factory); HostRun connects it on first use. ``start(spec)`` begins that connect early, in a thread,
as soon as the run knows it will reach the host and how (runbook.execute.early decides): the
handshake's round trips then overlap the rest of the run's set-up. The host's first use (``take``) adopts
that connection, or raises what its connect raised (the same TransportError a connect at that point
would have raised: the step fails the same way), after a bounded wait. A spec that differs from
the one the early connect used (the engine's own rendering of the host's variables decides) gets a
new connection; the early one is closed.

``close()`` ends every early connect not adopted (also one under way: Transport.abandon) and closes
what it made: a run that stops before its first step, a refusal after the early connects began,
Ctrl-C. Transports the engine adopted are the engine's to close (HostRun.close).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runbook.errors import TransportError
from runbook.execute.faults import debug_log
from runbook.execute.transports import open_transport
from runbook.execute.transports.base import HostSpec, Transport


@dataclass
class _Early:
    spec: HostSpec
    transport: Transport | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False
    started: float = field(default_factory=time.monotonic)


class Connections:
    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        factory: Callable[[HostSpec], Transport] | None = None,
        *,
        ignore_vars: Collection[str] = (),
    ):
        self.options = dict(options or {})
        self.factory = factory
        self.ignore_vars = frozenset(ignore_vars)  # vars that are not the host's (magic ones)
        self._lock = threading.Lock()
        self._early: dict[str, _Early] = {}
        self._closed = False
        self.started: list[str] = []  # hosts whose connect began early (diagnostics, tests)

    def make(self, spec: HostSpec) -> Transport:
        """The host's transport, not connected yet."""
        if self.factory is not None:
            return self.factory(spec)
        return open_transport(spec, **self.options)

    # ---------------------------------------------------------------------------- early
    def start(self, spec: HostSpec) -> None:
        """Begin connecting to ``spec`` in a thread (see start_all)."""
        self.start_all([spec])

    def start_all(self, specs: Sequence[HostSpec]) -> None:
        """Begin connecting to each of ``specs``, each in a thread: first what every transport can
        begin before its imports (``dial_early``: the SSH transport's TCP connect), then what
        connect() imports, imported here in the caller's thread (``warm_up``), then the connects."""
        made: list[_Early] = []
        for spec in specs:
            with self._lock:
                if self._closed or spec.name in self._early or any(e.spec.name == spec.name for e in made):
                    continue
            try:
                transport = self.make(spec)
                transport.dial_early()
            except Exception:  # (a bad output limit ...): the host's own open() raises it, in its step
                continue
            made.append(_Early(spec, transport))
        for entry in made:
            assert entry.transport is not None
            try:
                entry.transport.warm_up()
            except Exception:  # the host's own open() raises it, in its step
                entry.abandoned = True
        for entry in made:
            assert entry.transport is not None
            with self._lock:
                taken = entry.abandoned or self._closed or entry.spec.name in self._early
                if not taken:
                    self._early[entry.spec.name] = entry
                    self.started.append(entry.spec.name)
            if taken:
                _close(entry.transport)  # (its early TCP connect, if any, is closed with it)
                continue
            if (log := debug_log()) is not None:
                log.debug("connecting early: %s", entry.spec.name)
            threading.Thread(
                target=self._connect, args=(entry,), daemon=True, name=f"runbook-connect-{entry.spec.name}"
            ).start()

    def _connect(self, entry: _Early) -> None:
        assert entry.transport is not None
        try:
            if entry.abandoned:  # closed before this thread got going: connect nowhere
                raise TransportError(f"host {entry.spec.name}: connection abandoned")
            entry.transport.connect()
        except BaseException as exc:  # raised again in the host's first open(), as it would be there
            entry.error = exc
        with self._lock:
            abandoned = entry.abandoned
            entry.done.set()
        if abandoned:
            _close(entry.transport)

    def same(self, a: HostSpec, b: HostSpec) -> bool:
        """Do two specs reach the host the same way? (All of them, but the ``ignore_vars``.)"""

        def view(s: HostSpec) -> HostSpec:
            return replace(s, vars={k: v for k, v in (s.vars or {}).items() if k not in self.ignore_vars})

        return view(a) == view(b)

    def _adopt(self, entry: _Early) -> Transport:
        """The early connection once its connect has ended (a bounded wait), or its error."""
        t = entry.transport
        assert t is not None
        try:
            while not entry.done.wait(0.25):
                if time.monotonic() - entry.started > t.connect_bound:
                    raise TransportError(
                        f"host {entry.spec.name}: no connection within {t.connect_bound:g}s",
                        hint="is the host (or its sshd) hung, or a firewall dropping packets?",
                    )
        except BaseException:  # that bound, Ctrl-C: nobody will use it (it is no longer in the pool)
            self._abandon(entry)
            raise
        if entry.error is not None:
            raise entry.error
        return t

    def _abandon(self, entry: _Early) -> None:
        with self._lock:
            entry.abandoned = True
            done = entry.done.is_set()
        if entry.transport is not None:
            if done:
                _close(entry.transport)
            else:
                entry.transport.abandon()  # the thread closes what it made once its connect ends

    # ---------------------------------------------------------------------------- the run's
    def take(self, spec: HostSpec) -> Transport | None:
        """The early connection made for this very spec, once its connect has ended (raises what
        that connect raised), or None: there is none (the caller makes one: ``make``, connect)."""
        with self._lock:
            entry = self._early.pop(spec.name, None)
        if entry is None:
            return None
        if not self.same(entry.spec, spec):
            if (log := debug_log()) is not None:
                log.debug("early connection to %s not used: its variables rendered otherwise", spec.name)
            self._abandon(entry)
            return None
        return self._adopt(entry)

    def close(self) -> None:
        """Close every early connection not adopted (ending those still connecting); never waits
        for a peer. Later start() calls do nothing; open() still connects."""
        with self._lock:
            self._closed = True
            entries, self._early = list(self._early.values()), {}
        for entry in entries:
            self._abandon(entry)


def _close(t: Transport) -> None:
    try:
        t.close()
    except Exception:
        pass
