"""What a session hands back: the outcome of a run, plan or rollback, and the report of a validation.

``Outcome`` wraps the engine's RunResult with what the caller needs next to it: the runbook that ran,
whether it was a dry run, and where its audit trail went. Its ``as_dict()`` is the document that
``--output json`` prints (before terminal escapes are stripped)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing only: importing runbook.session stays cheap
    from runbook.execute.hostctx import HostRun, StepRecord
    from runbook.execute.runresult import RunResult
    from runbook.model.runbook import Runbook


def document(result: RunResult, runbook: Runbook, audit_path: str | None, dry_run: bool) -> dict[str, Any]:
    """The JSON document of a run: the engine's result, the runbook, the audit location, and the
    steps whose changes a rollback could not undo."""
    from runbook.kinds import undo

    doc = result.as_dict()
    doc.update(
        {"runbook": runbook.name, "runbook_file": str(runbook.path), "dry_run": dry_run, "audit": audit_path}
    )
    doc["cannot_undo"] = undo.as_dicts(runbook)  # steps whose changes a rollback cannot undo
    return doc


@dataclass
class Outcome:
    """How a run, plan or rollback ended. Secrets are already masked in everything it holds."""

    runbook: Runbook
    path: Path
    result: RunResult
    dry_run: bool = False
    audit_path: str | None = None
    """The sealed audit run file (None: no audit trail was written, e.g. a dry run)."""
    audit_error: str | None = None
    """Why the audit trail could not be sealed (the run's outcome stands)."""

    @property
    def exit_code(self) -> int:
        """0 ok, 1 failed and rolled back, 2 usage/validation, 3 refused before any change,
        4 rollback incomplete, 5 audit/state write fault, 130 interrupted."""
        return self.result.exit_code

    @property
    def ok(self) -> bool:
        return self.result.exit_code == 0

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def run_id(self) -> str:
        return self.result.run_id

    @property
    def message(self) -> str:
        return self.result.message

    @property
    def hosts(self) -> dict[str, HostRun]:
        return self.result.hosts

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """Per host: ok, changed, failed, skipped, rolled_back, unreachable (the RECAP table)."""
        return {h: dict(hr.stats) for h, hr in self.result.hosts.items()}

    def steps(self, host: str | None = None) -> list[StepRecord]:
        """The step records of one host (the only one when ``host`` is None), in the order they ran."""
        if host is None:
            if len(self.result.hosts) != 1:
                raise ValueError(f"the run had {len(self.result.hosts)} hosts: name one")
            host = next(iter(self.result.hosts))
        return list(self.result.hosts[host].records)

    def step(self, name: str, host: str | None = None) -> StepRecord:
        """The (last) record of the step called ``name``."""
        found = [r for r in self.steps(host) if r.name == name]
        if not found:
            raise KeyError(name)
        return found[-1]

    def __repr__(self) -> str:
        return (
            f"Outcome(run_id={self.run_id!r}, status={self.status!r}, exit_code={self.exit_code}, "
            f"hosts={list(self.result.hosts)!r}, dry_run={self.dry_run}, audit_path={self.audit_path!r})"
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``--output json`` document."""
        return document(self.result, self.runbook, self.audit_path, self.dry_run)


@dataclass
class RunbookCheck:
    """What validating one runbook found."""

    path: Path
    problems: list[Any] = field(default_factory=list)
    """runbook.plan.validate.Problem (``str()``: ``file:line:col: message (hint)``)."""
    lint_warnings: list[str] = field(default_factory=list)
    """Found before the checks (unquoted shell variables)."""
    undo_warnings: list[str] = field(default_factory=list)
    """Steps whose changes a rollback could not undo."""
    steps: int | None = None
    """How many steps the runbook has (None: it did not load)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def warnings(self) -> list[str]:
        return [*self.lint_warnings, *self.undo_warnings]


@dataclass
class Validation:
    """What validating runbooks found: exit code 0 when none has a problem, else 2."""

    runbooks: list[RunbookCheck]

    @property
    def problems(self) -> list[Any]:
        return [p for c in self.runbooks for p in c.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2

    def __iter__(self) -> Iterator[RunbookCheck]:
        return iter(self.runbooks)
