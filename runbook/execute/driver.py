"""Drive one step kind's generator: perform each action it yields through the host's transport.

In a dry-run (or a read-only phase) mutating actions are *not* performed: they are recorded as
PlannedChange (command lines, unified diffs) and a neutral result is sent back.
"""

from __future__ import annotations

import contextlib
import difflib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runbook.actions import (
    Action,
    Client,
    CommandResult,
    FileStat,
    Http,
    Note,
    Planned,
    ReadFile,
    Run,
    Sleep,
    Snapshot,
    Stat,
    Tunnel,
    WriteFile,
)
from runbook.errors import Aborted, RunbookError
from runbook.execute import clients, faultpoints, faults
from runbook.execute.transports.base import Transport
from runbook.kinds.base import Outcome, StepGen
from runbook.model.become import Become
from runbook.model.values import LARGEST

__all__ = ["Aborted", "Cancelled", "Drive", "NotReadOnly", "PlannedChange"]


def _bounded(seconds: float | None) -> float | None:
    """A duration the OS accepts: the clocks, selects and waits refuse values past about 1e9-1e10
    seconds (OverflowError); longer ones mean "forever" and LARGEST (31 years) is as good."""
    return None if seconds is None else min(float(seconds), float(LARGEST))


class Cancelled(Exception):
    """The step was stopped (timeout or the run being interrupted)."""


class SnapshotNotSaved(RunbookError):
    """A snapshot could not be made durable: the step stops before the change it guards."""


class NotReadOnly(RunbookError):
    """A read-only phase (preflight) tried to change something."""


@dataclass
class PlannedChange:
    """Something a dry-run would have done."""

    kind: str  # "command" | "file" | "request" | "client"
    summary: str  # command line / path / URL
    diff: str = ""  # unified diff for files


@dataclass
class Drive:
    """Performs actions for one step on one host."""

    transport: Transport
    dry_run: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    on_snapshot: Callable[[dict[str, Any]], None] | None = None
    on_note: Callable[[str], None] | None = None
    redact: Callable[[str], str] = lambda s: s
    learn: Callable[[Iterable[str]], None] = lambda secrets: None  # register an action's secrets
    read_only: bool = False  # preflight: a mutating action is an error, not a plan
    timed_out: bool = False
    deadline: float | None = None  # time.monotonic() by which the step must end (its timeout)
    env: Mapping[str, str] = field(default_factory=dict)  # added to every command (the run's tag)
    privilege: Become | None = None  # who an action asking for `become` runs as (the step's become_*)
    plan: bool = False  # a dry-run, even for a probe that runs for real: waits are not waited
    diff: bool = False  # --diff: a real run also shows each file it writes as a diff
    diffs: list[PlannedChange] = field(default_factory=list)  # what --diff shows (real writes)
    skipped_waits: float = 0.0  # seconds of waits a dry-run did not wait
    # a batched Client action goes here (runbook.execute.gather: one call for the batch's hosts);
    # None: the call is made for this host alone
    batch: Callable[[Client, Transport], Any] | None = None
    planned: list[PlannedChange] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # display forms of every command run
    elided: list[dict[str, Any]] = field(default_factory=list)  # output streams cut (sizes, sha256)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def run(self, gen: StepGen) -> Outcome:
        """Run the generator to completion and return its Outcome."""
        try:
            action = next(gen)
            while True:
                if self.cancel.is_set():
                    gen.close()
                    raise Cancelled("cancelled")
                try:
                    result = self.perform(action)
                except SnapshotNotSaved:  # never into the step: it must not go on to the change
                    gen.close()
                    raise
                except BaseException as exc:  # let the step see transport errors where it wants to
                    action = gen.throw(exc)
                    continue
                if action.mutating and not (self.dry_run or self.read_only):
                    faultpoints.action(type(action).__name__)  # inert unless RUNBOOK_FAULT is set (tests)
                action = gen.send(result)
        except StopIteration as stop:
            out = stop.value
            if out is None:
                out = Outcome.success()
            return out
        except (RunbookError, Cancelled):
            raise
        except Exception as exc:  # a module's, probe's or client's bug: this step's (or undo's) failure
            return Outcome.failure(faults.describe(exc, self.redact, "step"))
        finally:
            self._stack.close()

    # --------------------------------------------------------------------------------- actions
    def perform(self, action: Action) -> Any:
        if self.read_only and action.mutating:
            raise NotReadOnly(f"a read-only phase tried to change something: {type(action).__name__}")
        skip = self.dry_run and action.mutating
        self.learn(action.secrets())
        if isinstance(action, Run):
            command = action.command.as_user(self.privilege) if self.privilege else action.command
            shown = self.redact(command.display())
            if skip:
                self.planned.append(PlannedChange("command", shown))
                return CommandResult(rc=0, dry_run=True)
            self.commands.append(shown)
            timeout = _bounded(action.timeout)
            if self.deadline is not None:
                left = max(0.01, self.deadline - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
            if self.env:
                command = replace(command, env={**self.env, **command.env})
            if self.redact(command.to_shell()) != command.to_shell():
                command = replace(command, private=True)  # hand it over off the command line
            res = self.transport.run(command, timeout=timeout, redact=self.redact)
            if res.elided:
                self.elided.append({"command": shown, **res.elided})
            if res.timed_out and self.deadline is not None and time.monotonic() >= self.deadline - 0.05:
                self.timed_out = True  # the step's timeout, not the command's own
            return res
        if isinstance(action, ReadFile):
            return self.transport.read_file(action.path, become=self._become(action.become))
        if isinstance(action, Stat):
            return self.transport.stat(action.path, become=self._become(action.become))
        if isinstance(action, WriteFile):
            if skip:
                self.planned.append(self._file_change(action))
                return None
            if self.diff:  # what the file was, before it is written
                self.diffs.append(self._file_change(action))
            self.transport.write_file(
                action.path,
                action.content,
                mode=action.mode,
                owner=action.owner,
                group=action.group,
                become=self._become(action.become),
            )
            return None
        if isinstance(action, Http):
            if skip:
                self.planned.append(PlannedChange("request", self.redact(action.shown())))
                from runbook.actions import HttpResponse

                return HttpResponse(status=0, error="dry-run: not sent")
            return clients.http_request(
                replace(action, timeout=_bounded(action.timeout)), self.transport, self._stack
            )
        if isinstance(action, Tunnel):
            return self._stack.enter_context(self.transport.tunnel(action.host, action.port))
        if isinstance(action, Client):
            if skip:
                self.planned.append(PlannedChange("client", action.op.name))
                return None
            if action.batched:
                if self.batch is not None:
                    return self.batch(action, self.transport)
                note = self.on_note or (lambda line: None)
                params = dict(action.params)
                if self.deadline is not None:
                    params["timeout"] = max(1, int(self.deadline - time.monotonic() + 0.999))
                job = (self.transport.name, params, self.transport, note)
                return clients.call_batch(action.op, [job], self.cancel)[self.transport.name]
            return clients.call(action, self.transport, self._stack, self.cancel, note=self.on_note)
        if isinstance(action, Planned):
            self.planned.append(PlannedChange("change", self.redact(action.summary), self.redact(action.diff)))
            return None
        if isinstance(action, Sleep):
            if self.dry_run or self.plan:  # a plan says what it would wait, and does not
                self.skipped_waits += max(0.0, float(action.seconds))
                return None
            if self.cancel.wait(_bounded(action.seconds)):
                raise Cancelled("cancelled")  # the step's timeout or the run's interrupt, not a done wait
            return None
        if isinstance(action, Snapshot):
            data = dict(action.data)
            self.snapshots.append(data)
            if self.on_snapshot is not None and not self.dry_run:
                try:
                    self.on_snapshot(data)  # durable (written whole, fsynced) before the change
                except Exception as exc:
                    why = exc.message if isinstance(exc, RunbookError) else f"{type(exc).__name__}: {exc}"
                    raise SnapshotNotSaved(f"snapshot not saved, nothing changed: {why}") from exc
            return None
        if isinstance(action, Note):
            if self.on_note is not None:
                self.on_note(self.redact(action.text))
            return None
        raise TypeError(f"unknown action {action!r}")

    def _become(self, asked: bool) -> bool | Become:
        """What a file action that asks for privilege (or not) passes to the transport."""
        return self.privilege if asked and self.privilege is not None else asked

    def _file_change(self, action: WriteFile) -> PlannedChange:
        old = self.transport.read_file(action.path, become=self._become(action.become))
        st: FileStat = self.transport.stat(action.path, become=self._become(action.become))
        new_text = action.content.decode("utf-8", "replace")
        old_text = "" if old is None else old.decode("utf-8", "replace")
        diff = "".join(
            difflib.unified_diff(
                old_text.splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                fromfile=action.path if old is not None else "/dev/null",
                tofile=action.path,
            )
        )
        extra = []
        if action.mode is not None and (not st.exists or st.mode != action.mode):
            extra.append(f"mode {oct(st.mode) if st.exists else '-'} -> {oct(action.mode)}")
        summary = action.path + (f" ({', '.join(extra)})" if extra else "")
        if old is not None and old == action.content and not extra:
            summary += " (unchanged)"
        return PlannedChange("file", summary, self.redact(diff))
