"""The fault-injection matrix's harness: run a shipped runbook through the CLI (a subprocess, as an
operator would) against the session's real services, make the runbook process SIGKILL itself at a
named point (runbook/execute/faultpoints.py, ``RUNBOOK_FAULT=kill@POINT``), then `runbook rollback` or
`exec --resume`, and compare the state the host is left in with the exact state it must be in: image
IDs of the running containers, file digests and modes, the applied migrations, schema and rows.

Kill points are never written down by hand: a traced run of the same deploy (``RUNBOOK_FAULT=trace@F``)
lists every point the runbook passes, and ``kill_points`` keeps, for each step of the runbook (from
its model: name, module, mutating or not), the boundary before it and after the last one, and inside
each mutating step every durable snapshot, every change it makes and its end before it counts as done.

Each outcome goes to ``MATRIX`` (one row per point and recovery), which the conftest prints and
tests/faults/report.py turns into docs/fault-matrix.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from runbook.kinds import base as kinds
from runbook.model.runbook import load_runbook

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
KILLED = -signal.SIGKILL
MATRIX: list[dict[str, Any]] = []  # what the session tried (printed by conftest, written by report.py)


# --------------------------------------------------------------------------------------- the CLI


@dataclass
class Result:
    rc: int
    doc: dict[str, Any] | None
    stdout: str
    stderr: str
    seconds: float
    ended: float  # time.time() when the process ended

    @property
    def message(self) -> str:
        """The run's message and what failed in it (each failed step or undo, with its own message)."""
        if self.doc is None:
            return (self.stdout + self.stderr)[-3000:]
        failed = [
            f"{s.get('phase')} '{s.get('name')}': {s.get('msg', '')}"
            for h in (self.doc.get("hosts") or {}).values()
            for s in h.get("steps", [])
            if s.get("outcome") == "failed"
        ]
        return "; ".join([str(self.doc.get("message", "")), *failed])

    @property
    def run_id(self) -> str:
        assert self.doc is not None, self.message
        return str(self.doc["run_id"])


@dataclass
class Subject:
    """One runbook deployed on one host, with the settings (-e @vars.json) and how to look at it.

    ``state()`` is everything a rollback must put back; ``change`` the -e overrides that move the host
    to its next release; ``healthy(state)`` whether what serves is the release a state describes."""

    runbook: str
    root: Path
    inventory: Path
    host: str
    vars: dict[str, Any]
    change: dict[str, Any]
    state: Callable[[], dict[str, Any]]
    healthy: Callable[[dict[str, Any]], bool]
    cli_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    audit_dir: Path | None = None
    state_root: Path | None = None  # where .runbook/ lives (the cwd of every command)

    @property
    def cwd(self) -> Path:
        return self.state_root or self.root

    def cli(
        self,
        command: str,
        *extra: str,
        overrides: Mapping[str, Any] | None = None,
        fault: str | None = None,
        timeout: float = 600,
        env: Mapping[str, str] | None = None,
        runbook: str | None = None,
    ) -> Result:
        vars_file = self.root / "vars.json"
        vars_file.write_text(json.dumps(self.vars))
        argv = [sys.executable, "-m", "runbook.cli.main", command, runbook or self.runbook]
        if command != "rollback":
            argv += ["-i", str(self.inventory)]
        argv += ["-e", f"@{vars_file}"]  # rollback and --resume too: secrets are not kept in the state
        if overrides:
            argv += ["-e", json.dumps(dict(overrides))]
        # exec options (e.g. --force-window) are not rollback's: a rollback is never held to the window
        args = [a for a in self.cli_args if command != "rollback" or a not in EXEC_ONLY]
        argv += [*extra, *args, "--output", "json", "--yes"]
        if self.audit_dir is not None:
            argv += ["--audit-dir", str(self.audit_dir)]
        full_env = {**os.environ, "RUNBOOK_PATH": str(PLAYBOOKS), "PYTHONPATH": str(REPO), **self.env}
        full_env.pop("RUNBOOK_FAULT", None)
        if self.audit_dir is None:
            full_env["RUNBOOK_AUDIT"] = "0"
        if fault:
            full_env["RUNBOOK_FAULT"] = fault
        full_env.update(env or {})
        self.cwd.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        res = subprocess.run(
            argv, cwd=self.cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        ended = time.time()
        return Result(res.returncode, _json(res.stdout), res.stdout, res.stderr, time.monotonic() - t0, ended)

    def deploy(self, **overrides: Any) -> Result:
        return self.cli("exec", overrides={**self.change, **overrides})


def _json(text: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def killed_run_id(subject: Subject, before: set[str], audits_before: set[Path]) -> str:
    """The run a killed process started: its state directory is the one that was not there before,
    else (killed before it saved any state) the run its audit file names."""
    new = sorted(set(runs(subject)) - before)
    assert len(new) <= 1, f"expected one new run state, found {new}"
    if new:
        return new[0]
    assert subject.audit_dir is not None, "the killed run left no state and there is no audit to name it"
    files = sorted(set(subject.audit_dir.glob("*.jsonl")) - audits_before)
    assert len(files) == 1, f"the killed run left no state and {len(files)} new audit files"
    return json.loads(files[0].read_text().splitlines()[0])["run_id"]


def audit_files(subject: Subject) -> set[Path]:
    return (
        set(subject.audit_dir.glob("*.jsonl")) if subject.audit_dir and subject.audit_dir.is_dir() else set()
    )


def runs(subject: Subject) -> list[str]:
    d = subject.cwd / ".runbook" / "runs"
    return [p.name for p in d.iterdir()] if d.is_dir() else []


def saved_state(subject: Subject, run_id: str) -> dict[str, Any]:
    return json.loads((subject.cwd / ".runbook" / "runs" / run_id / "state.json").read_text())


# ---------------------------------------------------------------------------------- known bugs

EXEC_ONLY = frozenset({"--force-window"})  # exec/plan flags that `runbook rollback` does not take

NO_STATE_YET = (
    "issue 8 item 7 (runfaults): a run killed after its pre-flight (deploy lock taken) but before the "
    "first snapshot saved no state: `runbook rollback --run ID` and `--resume ID` exit 2 'no saved "
    "state for run ID under .runbook/runs' (expected: exit 0, nothing to undo / the run carried on), "
    "and the dead run's lock stays until the next deploy breaks it"
)
UNDO_STEP_AFTER = (
    "issue 8 (unowned; execute/attempts.py _record_change): a step with `undo:` and no snapshot gets "
    "its state entry only after it ends: killed after its command ran, `runbook rollback` does not "
    "run its undo (local-smoke: http.pid left in the smoke dir)"
)
RESUMED_UP_SNAPSHOT = (
    "issue 8 item 4 (runfaults/rollback): killed right after `docker compose up` and before the "
    "release was recorded, the resumed run's compose.up snapshot pairs the old release with the new "
    "images; rolling the resumed run back restores v1 and then fails 'release R restored but not "
    "healthy: api runs <v1 image id>, not <v2 image id>', exit 4"
)


def cases(steps: list[str], recoveries: list[str], known: dict[tuple[str, str], str]) -> list[Any]:
    """(step, recovery) parameters, with the points that fail today marked xfail(strict) with why."""
    out = []
    for step in steps:
        for rec in recoveries:
            why = known.get((step, rec))
            # a known bug is strict (its fix shows as XPASS); an "open" finding seen in one run is not
            marks = [pytest.mark.xfail(strict=not why.startswith("open"), reason=why)] if why else []
            out.append(pytest.param(step, rec, marks=marks, id=f"{step}-{rec}"))
    return out


def boundary_cases(steps: list[str], known: dict[tuple[str, str], str]) -> list[Any]:
    """(boundary, recovery) parameters: RUNBOOK_FAULT_MATRIX=full, every boundary with both
    recoveries; the CI matrix, every boundary with one of them, alternating along the runbook (so
    both are tried on every runbook), which one a boundary gets swapping daily (``rotation()``): two
    days of CI try every boundary with both."""
    both = ["rollback", "resume"]
    if FULL:
        return cases(steps, both, known)
    return [p for i, step in enumerate(steps) for p in cases([step], [both[(i + ROTATION) % 2]], known)]


# --------------------------------------------------------------------------------- kill points


@dataclass(frozen=True)
class KillPoint:
    point: str  # PHASE|KIND|STEP|N as runbook/execute/faultpoints.py names it
    where: str  # "boundary" | "inside"
    step: str  # the step it is before (boundary) or inside
    mutating: bool

    @property
    def id(self) -> str:
        phase, kind, step, n = self.point.split("|")
        what = {"step.start": "before", "phase.start": "before", "step.end": "end"}.get(kind, kind)
        label = step or phase
        return f"{what}:{label}" + (f"#{n}" if n != "1" else "")


def trace(subject: Subject, overrides: Mapping[str, Any] | None = None) -> tuple[Result, list[str]]:
    """Run the change once, traced: every fault point the runbook passes, in order."""
    path = subject.root / f"trace-{os.urandom(3).hex()}.txt"
    res = subject.cli("exec", overrides={**subject.change, **(overrides or {})}, fault=f"trace@{path}")
    points = path.read_text().splitlines() if path.exists() else []
    return res, points


def steps_of(runbook: str) -> list[tuple[str, str, bool]]:
    """(name, module, mutating) of the runbook's top-level steps, from its model."""
    rb = load_runbook(PLAYBOOKS / f"{runbook}.yml")
    out = []
    for s in rb.steps:
        kind = kinds.get(s.module)
        out.append((s.label, s.module, bool(kind and kind.mutating) or s.undo is not None))
    return out


def nested_of(runbook: str) -> dict[str, str]:
    """The name of every fallback (and undo) step of the runbook -> the top-level step it is part of."""
    rb = load_runbook(PLAYBOOKS / f"{runbook}.yml")
    return {sub.label: s.label for s in rb.steps for sub in s.nested()}


def kill_points(runbook: str, points: list[str]) -> list[KillPoint]:
    """The matrix's points of one traced run: the boundary before every step that ran (its step.start)
    and after the last (the always phase's start, else the run's end), and inside every mutating step
    each snapshot taken, each change made and its step.end (the change made, not yet counted as done).
    Traced names are rendered (``Render the {{ color }} environment``): matched to the model's."""
    model = steps_of(runbook)
    nested = nested_of(runbook)
    out: list[KillPoint] = []
    seen: set[str] = set()
    for p in points:
        phase, kind, traced, _ = p.split("|")
        step = _model_step(traced, model) if phase == "steps" else None
        part_of = None
        if step is None and phase == "steps" and traced in nested:  # inside a fallback step: its parent's
            part_of = next((m for m in model if m[0] == nested[traced]), None)
        if step is None and part_of is None:
            continue
        name, _, mutating = step or part_of  # type: ignore[misc]
        if part_of is not None:
            if mutating and (kind == "snapshot" or kind.startswith("action.") or kind == "step.end"):
                out.append(KillPoint(p, "inside", name, True))
            continue
        if kind == "step.start" and name not in seen:
            seen.add(name)
            out.append(KillPoint(p, "boundary", name, mutating))
        elif mutating and (kind == "snapshot" or kind.startswith("action.") or kind == "step.end"):
            out.append(KillPoint(p, "inside", name, True))
    after = next((p for p in points if p.startswith("always|phase.start|")), None)
    after = after or next((p for p in points if p.split("|")[1] == "run.end"), None)
    if after:
        out.append(KillPoint(after, "boundary", "(after the last step)", False))
    return out


def _model_step(traced: str, model: list[tuple[str, str, bool]]) -> tuple[str, str, bool] | None:
    """The top-level step of the model a traced (rendered) step name is (None: a fallback step ...)."""
    for step in model:
        if step[0] == traced:
            return step
    for step in model:
        if "{{" in step[0]:
            parts = re.split(r"\{\{.*?\}\}", step[0])
            if re.fullmatch(".+?".join(re.escape(x) for x in parts), traced):
                return step
    return None


# --------------------------------------------------------------------------------- comparing


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def differences(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """What differs, key by key (long values by digest), for an assertion message and the report."""
    out = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key), found.get(key)
        if a == b:
            continue
        show = (lambda v: repr(v)) if len(repr(a)) + len(repr(b)) < 240 else (lambda v: f"sha {digest(v)}")
        out.append(f"{key}: expected {show(a)}, found {show(b)}")
    return out


def file_digest(path: Path) -> str | None:
    """sha256 and mode of a file (None: absent)."""
    if not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest() + f" {oct(path.stat().st_mode & 0o7777)}"


def wait_until(check: Callable[[], bool], limit: float = 120, every: float = 0.05) -> float | None:
    """Seconds until ``check()`` held (None: not within ``limit``: a safety net, never asserted on)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if check():
            return time.monotonic() - t0
        time.sleep(every)
    return None


# ------------------------------------------------------------------------------- one point


@dataclass
class Outcome:
    runbook: str
    transport: str
    point: str
    where: str
    recovery: str  # rollback | resume
    restored: bool
    rc: int
    seconds_to_healthy: float | None
    detail: str = ""

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def kill_at(
    subject: Subject, kp: KillPoint, overrides: Mapping[str, Any] | None = None
) -> tuple[str, Result]:
    """Start the change and have the runbook process SIGKILL itself at the point; the killed run's id."""
    before, audits = set(runs(subject)), audit_files(subject)
    res = subject.cli("exec", overrides={**subject.change, **(overrides or {})}, fault=f"kill@{kp.point}")
    assert res.rc == KILLED, f"the run was not killed at {kp.point} (exit {res.rc}): {res.message}"
    return killed_run_id(subject, before, audits), res


@contextmanager
def recorded(row: Outcome) -> Iterator[Outcome]:
    """Record the point's outcome in MATRIX whatever the assertions that follow say."""
    try:
        yield row
    finally:
        MATRIX.append(row.row())


def recover(
    subject: Subject,
    kp: KillPoint,
    recovery: str,
    expected: dict[str, Any],
    transport: str = "local",
    overrides: Mapping[str, Any] | None = None,
) -> Result:
    """Kill at ``kp``, then roll the killed run back (``expected``: the state before it) or resume it
    (``expected``: the state a run that was never killed leaves). Asserts the exact state; returns
    the recovery's result."""
    run_id, killed = kill_at(subject, kp, overrides)
    row = Outcome(subject.runbook, transport, kp.id, kp.where, recovery, False, 0, None)
    with recorded(row):
        if recovery == "rollback":
            res = subject.cli("rollback", "--run", run_id)
        else:
            res = subject.cli("exec", "--resume", run_id, overrides={**subject.change, **(overrides or {})})
        row.rc = res.rc
        up = wait_until(lambda: subject.healthy(expected), limit=60)
        row.seconds_to_healthy = None if up is None else round(res.ended - killed.ended + up, 2)
        found = subject.state()
        diff = differences(expected, found)
        row.restored = res.rc == 0 and not diff
        row.detail = f"exit {res.rc}: {res.message[:300]}" if res.rc != 0 else "; ".join(diff)[:600]
        assert res.rc == 0, f"{recovery} after a kill at {kp.point}: exit {res.rc}: {res.message}"
        assert not diff, f"{recovery} after a kill at {kp.point} left:\n" + "\n".join(diff)
    return res


# ------------------------------------------------------------------------------- one runbook


class Target(Protocol):
    subject: Subject

    def ensure_baseline(self, fresh_release: bool = False) -> dict[str, Any]: ...


class Matrix:
    """One runbook on one host: its baseline, the state a clean change leaves (``changed_ok`` says
    the change really happened), and the kill points of a traced run of that change."""

    def __init__(
        self, target: Target, changed_ok: Callable[[dict[str, Any]], bool], transport: str = "local",
        undoable: bool = True,
    ):  # fmt: skip
        """``undoable``: the traced change is rolled back to get to the baseline again (False: the
        baseline is rebuilt; a change no rollback can undo, as a deploy that Coolify finished)."""
        self.target = target
        self.transport = transport
        self.undoable = undoable
        self.subject: Subject = target.subject
        self.baseline = target.ensure_baseline()
        res, points = trace(self.subject)
        assert res.rc == 0, f"the traced change of {self.subject.runbook} failed: {res.message}"
        self.changed = self.subject.state()
        assert changed_ok(self.changed), f"the traced run changed nothing: {self.changed}"
        self.traced = points
        self.points = kill_points(self.subject.runbook, points)
        if undoable:
            back = self.subject.cli("rollback", "--run", res.run_id)
            assert back.rc == 0, back.message
        self.target.ensure_baseline()

    def boundary(self, step: str) -> list[KillPoint]:
        return [k for k in self.points if k.where == "boundary" and k.step == step]

    def inside(self, step: str) -> list[KillPoint]:
        return [k for k in self.points if k.where == "inside" and k.step == step]

    def run(self, kp: KillPoint, recovery: str) -> None:
        self.target.ensure_baseline(fresh_release=True)
        expected = self.baseline if recovery == "rollback" else self.changed
        res = recover(self.subject, kp, recovery, expected, transport=self.transport)
        if recovery == "resume" and self.undoable:  # back to the baseline: roll the resumed run back
            back = self.subject.cli("rollback", "--run", res.run_id)
            diff = differences(self.baseline, self.subject.state())
            if back.rc != 0 or diff:  # the point's row says so too
                MATRIX[-1].update(restored=False, detail=f"resumed, then its rollback: exit {back.rc}: "
                                  + (back.message[:300] if back.rc else "; ".join(diff)[:300]))  # fmt: skip
            assert back.rc == 0, f"rolling the resumed run back: {back.message}"
            assert not diff, "rolling the resumed run back left:\n" + "\n".join(diff)


# ------------------------------------------------------------------------------ the CI sample

FULL = os.environ.get("RUNBOOK_FAULT_MATRIX") == "full"
ROTATION_ENV = "RUNBOOK_FAULT_MATRIX_ROTATION"


def rotation() -> int:
    """Which of equivalent points the CI matrix takes: $RUNBOOK_FAULT_MATRIX_ROTATION, else the day
    (UTC days since 1970): the same all day (a failure reproduces), another one the next day, so
    that every point of the full matrix comes round."""
    value = os.environ.get(ROTATION_ENV, "").strip()
    return int(value) if value.lstrip("-").isdigit() else int(time.time() // 86400)


ROTATION = rotation()


def step_modules(runbook: str) -> list[tuple[str, str]]:
    """(name, module) of every step of the runbook, nested ones (fallback, undo, block) too."""
    rb = load_runbook(PLAYBOOKS / f"{runbook}.yml")
    return [(x.label, x.module) for s in rb.steps for x in (s, *s.nested())]


def point_kind(kp: KillPoint) -> str:
    """snapshot | action.Run | action.WriteFile | action.Client | step.end (| step.start ...)."""
    return kp.point.split("|")[1]


def point_module(runbook: str, kp: KillPoint) -> str:
    """The module of the (top-level or nested) step a point is in, matched by its traced name."""
    traced = kp.point.split("|")[2]
    found = _model_step(traced, [(n, m, False) for n, m in step_modules(runbook)])
    return found[1] if found else traced


def sample(runbook: str, kps: list[KillPoint], turn: int | None = None) -> list[KillPoint]:
    """The CI matrix's share of the points inside one step (RUNBOOK_FAULT_MATRIX=full: all of them):
    every kind of point there is (the durable snapshot, each kind of change: a command, a file
    write, a client call; the step's end before it counts as done), every kind of step the points
    are in (the step's module, and each module of its fallback steps) and every pass (N: the hosts
    of serial batches, loop items) at least once. Of the points of one kind, which one is taken
    rotates (``rotation()``); kept in the traced order."""
    if FULL:
        return kps
    turn = ROTATION if turn is None else turn
    keep: list[KillPoint] = []
    for of in (point_kind, lambda k: point_module(runbook, k), lambda k: k.point.rsplit("|", 1)[1]):
        groups: dict[str, list[KillPoint]] = {}
        for k in kps:
            groups.setdefault(of(k), []).append(k)
        for key, group in groups.items():
            if not any(of(k) == key for k in keep):
                keep.append(group[turn % len(group)])
    return [k for k in kps if k in keep]


def inside_points(m: Matrix, step: str, recovery: str, full: bool) -> list[KillPoint]:
    """The points inside a mutating step to try: all of them, or (``--resume`` outside the full
    matrix) right after each change it makes. For a resume, a kill at the snapshot leaves what a kill
    at the boundary before leaves (nothing changed yet), and one at its end nearly what a kill at the
    boundary after leaves; both are tried with rollback, and with resume in the full matrix."""
    kps = m.inside(step)
    assert kps, f"no point traced inside {step}"
    if recovery == "resume" and not full:
        kps = [k for k in kps if k.point.split("|")[1].startswith("action.")] or kps[-1:]
    return kps


def try_all(m: Matrix, kps: list[KillPoint], recovery: str) -> None:
    """Every point, each on its own (one failing does not hide the others)."""
    failures = []
    for kp in kps:
        try:
            m.run(kp, recovery)
        except AssertionError as exc:
            failures.append(f"{kp.id}: {exc}")
    assert not failures, "\n".join(failures)
