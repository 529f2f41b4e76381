"""One loop item of one step on one host: render the arguments, attempt (with the step's timeout),
judge (failed_when/changed_when/until), retry with backoff, and record what changed for rollback."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.errors import RenderError, RunbookError, TransportError
from runbook.execute import faults, leftovers
from runbook.execute.driver import Cancelled, Drive
from runbook.execute.hostctx import HostRun, StepRecord
from runbook.execute.state import Entry
from runbook.kinds import base as kinds
from runbook.kinds.arguments import coerce
from runbook.kinds.base import Outcome, StepContext
from runbook.model import become
from runbook.model.become import Become
from runbook.model.runbook import Step
from runbook.model.step import NUMBER_KEYWORDS
from runbook.model.values import is_template, to_number, truthy
from runbook.render.filters import to_bool
from runbook.render.runtime import Anything, planned_result, reading, touched_now, unknowable
from runbook.render.secrets import Redactor, leaves
from runbook.render.templar import LazyVars, Templar


def plan_budget() -> float:
    """Seconds a dry-run spends on a probe it runs for real, and on the items of a loop of them (a
    monitoring loop of 30 minutes is not waited through): RUNBOOK_PLAN_BUDGET, default 30."""
    try:
        return max(0.0, float(os.environ.get("RUNBOOK_PLAN_BUDGET", "30")))
    except ValueError:
        return 30.0


NO_LOG_SECRET_LINES = 256


@dataclass
class Item:
    """One loop item (or the whole step without a loop) about to be attempted."""

    phase: str
    variables: LazyVars
    args: dict[str, Any]
    read_only: bool = False
    loop_vars: dict[str, Any] | None = None
    index: int | None = None  # position in the loop
    attempt: int = 0  # which attempt is running (1 = the first)
    retries: float = 0
    delay: float = 1.0
    backoff: float = 1.0
    timeout: float | None = None
    privilege: Become = field(default_factory=Become)  # who `become` means for this item
    become: bool = False  # whether the item runs with privilege at all
    plan_cut: bool = False  # a dry-run's probe, bounded by the plan's budget (not its own timeout)


@dataclass
class Attempt:
    outcome: Outcome
    planned: list[dict[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    render_error: bool = False  # the step's own rendering (a template file) failed
    elided: list[dict[str, Any]] = field(default_factory=list)  # output streams cut (see Drive)
    skipped_waits: float = 0.0  # seconds a dry-run did not wait (see Drive.plan)
    diffs: list[dict[str, str]] = field(default_factory=list)  # --diff: the files it wrote


def privilege(templar: Any, step: Step | None, variables: Mapping[str, Any]) -> Become:
    """Who ``become`` means for this step on this host: its become_user/become_method/become_flags
    (templates rendered; runbook defaults already merged) over the host's ansible_become_* variables.
    RenderError when the method is not one the transports implement."""
    keywords: dict[str, Any] = {}
    for key in become.KEYWORDS:
        value = getattr(step, key, None) if step is not None else None
        keywords[key] = templar.render(value, variables, step.loc(key)) if is_template(value) else value
    priv = become.resolve(keywords, variables)
    for key, problem in (
        ("become_method", become.method_problem(priv.method)),
        ("become_flags", become.flags_problem(priv.flags)),
        ("become_user", become.user_problem(priv.user)),
    ):
        if problem:
            where = step.loc(key) if step is not None and getattr(step, key) else None
            raise RenderError(problem, location=where or (step.location if step is not None else None))
    return priv


def privilege_asked(templar: Any, step: Step | None, variables: Mapping[str, Any]) -> bool:
    """Does this step run with privilege? Its ``become`` (a template rendered; the runbook's default
    merged in), else the host's ansible_become variable; ``become: false`` wins over the inventory."""
    value = step.become if step is not None else None
    if value is None:
        value = become.pick(variables, "become")
    elif is_template(value):
        value = templar.render(value, variables, step.loc("become") if step is not None else None)
    return truthy(value)


def play_vars(hr: HostRun, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The run's `vars:` and -e values for a host, rendered (one that cannot be is left out)."""
    out: dict[str, Any] = {}
    for name in hr.play_var_names:
        try:
            out[name] = variables[name]
        except Exception:  # undefined, or a template that fails for this host: not handed over
            continue
    return out


def as_written(value: Any, redact: Callable[[str], str]) -> Any:
    """A step's arguments for the state file: plain JSON, templates unrendered, known secrets masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {as_written(k, redact): as_written(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_written(v, redact) for v in value]
    return value


@dataclass
class Attempts:
    """Runs one item of a step: renders its arguments and timing, attempts it until it succeeds or
    its retries are spent, judges each outcome and records its change. A StepRunner holds one, made
    with exactly what it needs: the run's templar and redactor, where files are found, the run's
    controls (cancel, persist, fault), the delegate lookup, and the drives in flight (``active``,
    under ``lock``) that an interrupt stops."""

    templar: Templar
    redactor: Redactor
    emit: Callable[..., None]  # emit(kind, hr, step=None, **fields): an event on the run's bus
    project_dir: Path
    loader_dirs: tuple[Path, ...]
    cancel: threading.Event
    run_id: str
    dry_run: bool = False
    diff: bool = False  # --diff: the diff of every file a step writes, shown and digested
    persist: Callable[..., None] = lambda durable=True: None
    delegate: Callable[[str], HostRun] | None = None
    pinned: Callable[[], frozenset[str]] = frozenset  # releases unfinished runs may roll back to
    inflight: leftovers.InFlight = field(default_factory=lambda: leftovers.InFlight(None))
    fault: Callable[[], str | None] = lambda: None  # a run-level fault (audit/state): steps stop
    active: dict[str, tuple[Drive, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    batch_hook: Callable[..., Any] | None = None  # (hr, step, item, drive): a batched step's rendezvous

    def run_attempts(
        self, hr: HostRun, step: Step, kind: kinds.StepKind, item: Item, rec: StepRecord
    ) -> StepRecord:
        """Attempt until the step succeeds, its retries are spent, or the run is interrupted."""
        variables, phase, args = item.variables, item.phase, item.args
        retries, delay, backoff, timeout = item.retries, item.delay, item.backoff, item.timeout
        entry: Entry | None = None
        target = hr
        if step.delegate_to and self.delegate:  # rendered per item, as Ansible's (delegate_to: "{{ item }}")
            where = self.templar.render(step.delegate_to, variables, step.loc("delegate_to"))
            target = self.delegate(str(where).strip())
        attempt_no = 0
        while True:
            attempt_no += 1
            item.attempt = attempt_no
            attempt, entry = self._attempt(hr, target, kind, step, args, item, timeout, entry)
            out = attempt.outcome
            if attempt.render_error and not out.ok:
                rec.error = "render"
            registered = out.registered()
            for stream in ("stdout", "stderr"):  # as Ansible registers them: no trailing newline
                if isinstance(registered.get(stream), str):
                    registered[stream] = registered[stream].rstrip("\r\n")
            planned = self.dry_run and not item.read_only and not kind.pure
            if planned:  # not run: its output, return code ... are known only at run time
                registered = planned_result(registered)
            until_ok, judged = True, True
            with reading():
                try:
                    ok, changed = self._judge(step, out, registered, variables)
                    if planned and touched_now():  # judged on output the plan does not have
                        ok, changed = out.ok, out.changed
                except RunbookError as exc:  # a failed_when/changed_when that cannot be evaluated
                    ok, changed, judged = False, out.changed, False
                    if planned and unknowable(exc.message, touched_now()):
                        ok, judged = out.ok, True
                    else:
                        out = _failed(out, str(exc))
                        rec.error = "render"
            registered.update(failed=not ok, changed=changed)
            if step.register and item.loop_vars is None:
                plan_unknown = self.dry_run and not item.read_only and not kind.result_known_in_plan
                hr.facts[step.register] = Anything() if plan_unknown else registered
            if "ansible_facts" in out.data and ok:
                hr.facts.update(out.data["ansible_facts"])
            if ok and step.until:
                with reading():
                    try:
                        until_ok = self._conditions(step.until, step, registered, variables, step.loc("until"))
                        until_ok = until_ok or (planned and touched_now())
                    except RunbookError as exc:
                        if not (planned and unknowable(exc.message, touched_now())):
                            ok, judged, rec.error = False, False, "render"
                            out = _failed(out, str(exc))
            if (
                not judged
                or (ok and until_ok)
                or attempt_no > retries
                or self.dry_run
                or self.cancel.is_set()
                or self.fault()  # the audit/state cannot be written: no retry, the run stops
            ):
                break
            why = out.msg or ("until condition not met" if ok else "failed")
            if step.no_log:  # a failure's message may quote the step's output
                why = "until condition not met" if ok else "failed"
            line = f"attempt {attempt_no}/{retries + 1} failed ({why}); retrying in {delay:g}s"
            self.emit("step.output", hr, step, phase=phase, data={"line": self.redactor.redact(line)})
            if self.cancel.wait(delay):
                raise Cancelled("interrupted")
            delay *= backoff
        rec.attempts = attempt_no
        rec.rc, rec.stdout, rec.stderr = out.rc, out.stdout, out.stderr
        rec.command = out.command or ("\n".join(attempt.commands) if attempt.commands else None)
        rec.elided = attempt.elided
        rec.planned = attempt.planned
        rec._diffs = attempt.diffs  # type: ignore[attr-defined]
        final_ok = ok and until_ok
        rec.msg = out.msg if final_ok or out.msg else "until condition not met"
        if ok and not until_ok:
            rec.msg = f"until condition not met after {attempt_no} attempt(s)" + (
                f": {out.msg}" if out.msg else ""
            )
        rec.outcome = (
            "failed" if not final_ok else ("skipped" if out.skipped else ("changed" if changed else "ok"))
        )
        if item.plan_cut and rec.outcome == "failed" and out.rc == 124 and attempt_no == 1:
            rec.outcome = "skipped"
            rec.msg = (f"dry-run: stopped after {timeout:g}s (a plan spends at most RUNBOOK_PLAN_BUDGET={timeout:g}s "
                       "on a probe); the real run lets it finish")  # fmt: skip
        elif self.dry_run:
            note = plan_note(attempt.skipped_waits, retries if not final_ok else 0, delay)
            rec.msg = f"{rec.msg}; {note}" if rec.msg and note else (note or rec.msg)
        self._record_change(hr, target, step, item, rec, entry, changed)
        if step.no_log and not self.dry_run:  # what it printed is secret (its first lines: a step that
            # prints a token prints a few lines; thousands of "secrets" would slow every redaction)
            lines = (line for line in out.stdout.splitlines() if 6 <= len(line.strip()) <= 8192)
            self.redactor.add(itertools.islice(lines, NO_LOG_SECRET_LINES))
        if step.register and step.register in self.redactor.names and not self.dry_run:
            # a declared secret that a step registers: what it printed is a secret
            lines = (line.strip() for line in out.stdout.splitlines() if 6 <= len(line.strip()) <= 8192)
            self.redactor.add(itertools.islice(lines, NO_LOG_SECRET_LINES))
            texts = (v for v in leaves(dict(out.data or {})) if len(v) >= 6 and not v.isdigit())
            self.redactor.add(itertools.islice(texts, NO_LOG_SECRET_LINES))
        rec._registered = registered  # type: ignore[attr-defined]
        return rec

    def _record_change(
        self,
        hr: HostRun,
        target: HostRun,
        step: Step,
        item: Item,
        rec: StepRecord,
        entry: Entry | None,
        changed: bool,
    ) -> None:
        """Keep what rollback needs: the snapshot entry's outcome, or an entry for a change without
        a snapshot (undone by the step's undo:, else reported as not undone: runbook.kinds.undo)."""
        if changed and not self.dry_run:
            hr.changed_anything = True
        if entry is not None:
            entry.status = rec.outcome
            entry.changed = changed or entry.changed
            self.persist(durable=False)
        elif changed and not self.dry_run and (
            step.undo is not None or (item.phase == "steps" and rec.outcome != "failed")
        ):
            # a change with no snapshot: its undo: step, or a rollback says it was NOT undone (the
            # step that failed is the failure itself: not counted as a change it completed)
            entry = self.new_entry(hr, target, step, item)
            if step.undo is None:  # only reported by a rollback: keep no argument, no item
                entry.args = entry.ran_args = entry.item = None
                entry.rendered = entry.rendered_item = None
            entry.status, entry.changed = rec.outcome, True
            hr.state.entries.append(entry)
            self.persist(durable=step.undo is not None)  # a bare record guards no change: no fsync

    def new_entry(self, hr: HostRun, target: HostRun, step: Step, item: Item) -> Entry:
        """A state entry for a step that changed something (no secret in clear: see runbook.execute.state)."""
        shown_item = self.redactor.redact_obj(item.loop_vars) if item.loop_vars is not None else None
        return Entry(
            item.phase,
            step.top_index,
            step.label,
            step.module,
            as_written(step.args, self.redactor.redact),
            item=shown_item,
            has_undo_step=step.undo is not None,
            delegate_to=target.name if target is not hr else None,
            key=step.key,
            loop_index=item.index,
            item_masked=shown_item != item.loop_vars,
            ran_args=self.redactor.redact_obj(item.args),
            rendered=item.args,
            rendered_item=item.loop_vars,
        )

    def render_args(
        self,
        kind: kinds.StepKind,
        step: Step,
        variables: Mapping[str, Any],
        read_only: bool = False,
        raw: Any = None,
    ) -> dict[str, Any]:
        """The step's arguments (or ``raw`` ones) rendered for a host, coerced and validated."""
        raw = kind.normalize(step.args if raw is None else raw)
        if step.top_phase == "preflight" and kind.raw_shell and isinstance(raw, dict):
            raw = {"changes": False, **raw}
        raw = self._condition_args(kind, step, raw, variables)
        args = self.templar.render(raw, variables, step.location)
        args = kind.normalize(args)
        if step.environment is not None:
            args = self._environment(kind, step, args, variables)
        if step.changes is not None and kind.raw_shell:
            args = {**args, "changes": to_bool(step.changes)}
        args = coerce(args, kind.schema)
        exc = kinds.first_error(kind.schema, args)
        if exc is not None:
            where = ".".join(str(p) for p in exc.absolute_path) or step.module
            loc = step.arg_locations.get(str(exc.absolute_path[0])) if exc.absolute_path else step.location
            raise RunbookError(
                f"{step.module}: invalid argument {where}: {self.redactor.redact(exc.message)}",
                location=loc or step.location,
            )
        return args

    def _environment(
        self, kind: kinds.StepKind, step: Step, args: dict[str, Any], variables: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Ansible's `environment:`: the step's command's environment (a shell/command step's env:;
        its own env: entries win)."""
        env = self.templar.render(step.environment, variables, step.loc("environment"))
        if not isinstance(env, Mapping):
            raise RunbookError(
                f"environment must be a mapping of NAME: value, got {type(env).__name__}",
                location=step.loc("environment"),
            )
        if "env" in (kind.schema.get("properties") or {}):
            return {**args, "env": {**{str(k): v for k, v in env.items()}, **(args.get("env") or {})}}
        if kind.schema.get("properties") is None:  # an Ansible module: Ansible sets it (step.environment)
            return args
        raise RunbookError(
            f"environment: applies to commands (shell/command steps); {step.module} runs none",
            location=step.loc("environment"),
            hint="remove environment: from this step",
        )

    def _condition_args(
        self, kind: kinds.StepKind, step: Step, raw: Any, variables: Mapping[str, Any]
    ) -> Any:
        """The kind's condition arguments (assert's `that`) evaluated as `when:` is: a bare expression
        or a {{ }} one, each to true/false."""
        if not kind.conditions or not isinstance(raw, dict):
            return raw
        out = dict(raw)
        for key in kind.conditions:
            if key not in out:
                continue
            value = out[key]
            items = value if isinstance(value, list) else [value]
            where = step.arg_locations.get(key) or step.location
            done = [
                c if isinstance(c, bool) else self.templar.evaluate(c, variables, where)
                for c in items
                if isinstance(c, (str, bool, int, float))
            ]
            if len(done) == len(items):
                out[key] = done if isinstance(value, list) else done[0]
        return out

    def timing(self, step: Step, item: Item) -> None:
        """Render the step's retries, delay, backoff and timeout into the item (RenderError if not numbers)."""
        v = item.variables
        item.retries = (
            int(self._num("retries", step, v)) if step.retries is not None else (3 if step.until else 0)
        )
        item.delay = float(self._num("delay", step, v))
        item.backoff = float(self._num("backoff", step, v))
        item.timeout = self._num("timeout", step, v) if step.timeout is not None else None
        budget = plan_budget()
        if self.dry_run and item.read_only and budget > 0 and (item.timeout is None or item.timeout > budget):
            item.timeout, item.plan_cut = budget, True  # a plan does not wait for a long probe
        item.become = privilege_asked(self.templar, step, v)
        item.privilege = privilege(self.templar, step, v) if item.become else Become()

    def _num(self, key: str, step: Step, variables: Mapping[str, Any]) -> float | int:
        """A numeric keyword rendered, under the same rule as when the runbook is read."""
        value = self.templar.render(getattr(step, key), variables, step.location)
        try:
            return to_number(value, **NUMBER_KEYWORDS[key])
        except ValueError as exc:
            raise RenderError(f"{key} {exc}", location=step.location) from None

    def _conditions(
        self,
        conds: tuple[Any, ...],
        step: Step,
        registered: dict,
        variables: LazyVars,
        loc: Any,
        any_: bool = False,
    ) -> bool:
        scope = variables.child(
            ({step.register: registered} if step.register else {}, True), ({"result": registered}, True)
        )
        values = (self.templar.evaluate(c, scope, loc) for c in conds)
        return any(values) if any_ else all(values)

    def _judge(self, step: Step, out: Outcome, registered: dict, variables: LazyVars) -> tuple[bool, bool]:
        ok, changed = out.ok, out.changed
        if step.failed_when is not None:
            ok = not self._conditions(step.failed_when, step, registered, variables, step.location, any_=True)
        if step.changed_when is not None:
            changed = bool(step.changed_when) and self._conditions(
                step.changed_when, step, registered, variables, step.location
            )
        return ok, changed

    def _attempt(
        self,
        hr: HostRun,
        target: HostRun,
        kind: kinds.StepKind,
        step: Step,
        args: dict[str, Any],
        item: Item,
        timeout: float | None,
        entry: Entry | None,
    ) -> tuple[Attempt, Entry | None]:
        render_failed: list[bool] = []

        def render_str(text: str) -> Any:
            try:
                return self.templar.render_str(text, item.variables, None)
            except RunbookError:
                render_failed.append(True)
                raise

        ctx = StepContext(
            host=target.name,
            vars=item.variables,
            project_dir=self.project_dir,
            run_id=self.run_id,
            dry_run=self.dry_run and not item.read_only,
            become=item.become,
            render_str=render_str,
            loader_dirs=self.loader_dirs,
            pinned=self.pinned,
            holds_secret=lambda text: self.redactor.redact(text) != text,
            play_vars=lambda: play_vars(target, item.variables),
        )
        cancel = threading.Event()
        holder: dict[str, Entry | None] = {"entry": entry}
        entry_before = entry  # an earlier attempt's entry (retries) stays

        def on_snapshot(data: dict[str, Any]) -> None:
            entry = holder["entry"]
            if entry is None:
                entry = holder["entry"] = self.new_entry(hr, target, step, item)
                hr.state.entries.append(entry)
            entry.snapshots.append(data)
            try:
                self.persist(guard=True)
            except Exception:  # not durable: the change does not happen, so nothing to undo for it
                entry.snapshots.pop()
                if not entry.snapshots and entry is not entry_before:
                    hr.state.entries.remove(entry)
                    holder["entry"] = None
                raise
            digest = hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()
            self.emit(
                "snapshot", hr, step, phase=item.phase,
                data={"module": step.module, "keys": sorted(data), "sha256": digest},
            )  # fmt: skip

        try:
            transport = target.transport()
        except Exception as exc:  # TransportError, or whatever a connection library raised
            hr.unreachable = target is hr
            msg = str(exc) if isinstance(exc, TransportError) else faults.describe(exc, self.redactor.redact)
            return Attempt(Outcome.failure(f"unreachable: {msg}")), holder["entry"]
        drive = Drive(
            transport=transport,
            dry_run=self.dry_run and not item.read_only,
            plan=self.dry_run,
            diff=self.diff,
            read_only=item.read_only,
            cancel=cancel,
            on_snapshot=on_snapshot,
            on_note=lambda line: self.emit("step.output", hr, step, phase=item.phase, data={"line": line}),
            redact=self.redactor.redact,
            learn=self.redactor.add,
            deadline=time.monotonic() + float(timeout) if timeout else None,
            privilege=item.privilege,
        )
        if target is hr:
            drive.batch = self.batch_hook(hr, step, item, drive) if self.batch_hook else None
        if self.cancel.is_set():
            raise Cancelled("interrupted")
        provisional = None
        if step.undo is not None and holder["entry"] is None and not self.dry_run and item.phase == "steps":
            # its undo: must run if this process dies mid-step: its entry is on disk before it starts
            provisional = holder["entry"] = self.new_entry(hr, target, step, item)
            provisional.status, provisional.changed = "running", True
            hr.state.entries.append(provisional)
            try:
                self.persist(guard=True)
            except Exception as exc:  # not durable: the step does not start
                hr.state.entries.remove(provisional)
                holder["entry"] = None
                why = faults.describe(exc, self.redactor.redact)
                return Attempt(Outcome.failure(f"state not saved, nothing changed: {why}")), None
        token = self.inflight.start(target.name, step.label)  # on disk before its first command
        drive.env = self.inflight.env(self.run_id, token)
        with self.lock:
            self.active[hr.name] = (drive, transport)
        timer = None
        if timeout:

            def expire() -> None:
                # commands carry the deadline themselves (the transport kills exactly that one, even
                # on a transport shared through delegate_to); this stops waits, sleeps and clients
                drive.timed_out = True
                cancel.set()

            timer = threading.Timer(float(timeout), expire)
            timer.daemon = True
            timer.start()
        try:
            out = drive.run(kind.run(args, ctx))
        except Cancelled:
            if not drive.timed_out:
                raise
            out = Outcome.failure(f"timed out after {timeout:g}s", rc=124)
        except TransportError as exc:
            out = Outcome.failure(f"connection to {target.name} lost: {exc.message}")
        except RunbookError as exc:
            out = Outcome.failure(str(exc))
        except OSError as exc:  # a file action the host refused (permissions of the login/become user)
            out = Outcome.failure(exc.strerror or str(exc))
        except Exception as exc:  # anything else inside the step (a client, a probe, a snapshot)
            out = Outcome.failure(faults.describe(exc, self.redactor.redact, f"{step.label} on {hr.name}"))
        finally:
            if timer:
                timer.cancel()
            with self.lock:
                self.active.pop(hr.name, None)
            self.inflight.end(token)
        if provisional is not None and not provisional.snapshots:
            # it ran to its end: what it changed is known now (_record_change keeps what undo needs)
            hr.state.entries.remove(provisional)
            holder["entry"] = None
        if drive.timed_out and not out.ok:
            out = Outcome.failure(
                f"timed out after {timeout:g}s",
                rc=124,
                stdout=out.stdout,
                stderr=out.stderr,
                command=out.command,
            )
        if self.cancel.is_set():
            raise Cancelled("interrupted")
        planned = [{"kind": p.kind, "summary": p.summary, "diff": p.diff} for p in drive.planned]
        attempt = Attempt(
            out, planned, drive.commands, drive.snapshots, render_error=bool(render_failed), elided=drive.elided,
            skipped_waits=drive.skipped_waits,
            diffs=[{"kind": p.kind, "summary": p.summary, "diff": p.diff} for p in drive.diffs],
        )
        return attempt, holder["entry"]


def plan_note(waited: float, retries: float, delay: float) -> str:
    """What a dry-run did not do of a step it ran for real (a probe): the waits, the retries."""
    parts = []
    if waited > 0:
        parts.append(f"did not wait {waited:g}s")
    if retries:
        parts.append(f"tried once (the run retries up to {retries:g} more times, {delay:g}s apart)")
    return ("dry-run: " + " and ".join(parts)) if parts else ""


def _failed(out: Outcome, msg: str) -> Outcome:
    return Outcome.failure(msg, rc=out.rc, stdout=out.stdout, stderr=out.stderr, command=out.command)
