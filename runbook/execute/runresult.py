"""What a run is asked to do (RunOptions) and what it ended with (RunResult, exit codes)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.execute.hostctx import HostRun
from runbook.execute.state import RunState
from runbook.execute.transports import HostSpec, Transport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PREFLIGHT, EXIT_ROLLBACK_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
# 3 also: refused before any change (window, deploy lock, host key, unreachable, audit/state dir)
EXIT_FAULT = 5  # the audit trail or the run state could not be written: the run stopped, rolled back


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


@dataclass
class RunOptions:
    dry_run: bool = False
    yes: bool = False
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    forks: int | None = None
    start_at: str | None = None
    project_dir: Path = field(default_factory=Path.cwd)
    state_root: Path = field(default_factory=lambda: Path(".runbook"))
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    confirm: Callable[[str], bool] | None = None  # ask the operator (None: not interactive)
    run_id: str | None = None
    resume: RunState | None = None
    transport_factory: Callable[[HostSpec], Transport] | None = None
    inventory_sources: Sequence[str] = ()  # as given with -i (kept for `runbook rollback`/--resume)
    limit: str | None = None
    secret_names: frozenset[str] = frozenset()  # --secret NAME and the names of vault -e @files
    # who approves `approve` steps (runbook.execute.approval): --approver, RUNBOOK_APPROVER, the key's
    # principal; none given: the login. ask_name(question, default) asks a terminal for a name.
    approvers: Sequence[Any] = ()
    ask_name: Callable[[str, str], str] | None = None
    diff: bool = False  # --diff: a real run shows each file it writes as a diff (step.end data.diffs)
    # --step: step_gate(host, step name) says whether a step of the steps phase runs (False: skipped)
    step_gate: Callable[[str, str], bool] | None = None
    # where the hosts' transports come from (runbook.execute.transports.pool.Connections: connects
    # begun early by the session); None: the engine makes its own from the options above
    connections: Any = None


@dataclass
class RunResult:
    run_id: str
    status: str
    exit_code: int
    hosts: dict[str, HostRun]
    started: float
    ended: float
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "message": self.message,
            "duration": round(self.ended - self.started, 3),
            "hosts": {
                h: {
                    "stats": hr.stats,
                    "failed": hr.failed,
                    "failure": hr.failure,
                    "unreachable": hr.unreachable,
                    "rollback": hr.rollback_status,
                    "rollback_problems": list(hr.rollback_problems),
                    "steps": [r.as_dict() for r in hr.records],
                }
                for h, hr in self.hosts.items()
            },
        }


def verdict(
    hosts: Mapping[str, HostRun], names: Sequence[str], aborted: str, dry_run: bool
) -> tuple[str, int, str]:
    """The run's status, exit code and message once the steps phase is over."""
    failed = [h for h in names if hosts[h].failed]
    if not failed:
        return "success", EXIT_OK, ""
    rb_failed = [h for h in names if hosts[h].rollback_status == "failed"]
    lines = [f"{h}: {hosts[h].failure}" for h in failed]
    if aborted:
        lines.append("aborted: " + aborted)
    if dry_run:
        render = any(hosts[h].render_error for h in failed)
        return "failed", EXIT_USAGE if render else EXIT_FAILED, "\n".join(lines)
    if all(hosts[h].refused for h in failed) and not any(hosts[h].changed for h in names):
        lines.append("refused before any change: nothing was changed")
        return "refused", EXIT_PREFLIGHT, "\n".join(lines)
    if rb_failed:
        lines += [p for h in rb_failed for p in hosts[h].rollback_problems]
        lines.append(
            "ROLLBACK FAILED on "
            + ", ".join(rb_failed)
            + ": a human must act (see the recap and `runbook rollback`)"
        )
        return "rollback_failed", EXIT_ROLLBACK_FAILED, "\n".join(lines)
    rolled = [h for h in failed if hosts[h].rollback_status == "ok"]
    return ("rolled_back" if rolled else "failed"), EXIT_FAILED, "\n".join(lines)


def fault_verdict(
    status: str, code: int, message: str, fault: str | None, hosts: Iterable[HostRun]
) -> tuple[str, int, str]:
    """The verdict when the audit trail or the run state could not be written (``fault``): nothing
    changed anywhere is a refusal (3); else the run stopped there and rolled back what it had
    changed (5; a failed rollback stays 4, an interrupt 130)."""
    if not fault or code not in (EXIT_OK, EXIT_FAILED) or status in ("aborted", "refused"):
        return status, code, message
    message = (message + "\n" if message else "") + f"run stopped: {fault}"
    if not any(hr.changed for hr in hosts):
        return "refused", EXIT_PREFLIGHT, message + "; nothing was changed"
    return "aborted", EXIT_FAULT, message
