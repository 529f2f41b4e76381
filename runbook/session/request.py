"""What a caller asks for: one typed request per use case (run or plan, rollback, validate), and the
hooks through which a run talks back to whoever started it.

A request is plain data: one field per option, each named after the CLI flag it comes from (so a new
option is one new field here, read in one place of runbook.session). Sequences may be given as any
iterable (a tuple is kept); tags also as one comma-separated string, as ``--tags a,b`` takes them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from runbook.errors import UsageError

ENGINES = ("native", "ansible")

Subscriber = Callable[[Any], None]  # called with each runbook.execute.events.Event of the run


def _audit_dir() -> str:
    return os.environ.get("RUNBOOK_AUDIT_DIR", "audit")


def _tags(value: str | Iterable[str]) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else [t for v in value for t in str(v).split(",")]
    return frozenset(t.strip() for t in items if t.strip())


def _strings(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, (str, os.PathLike)) else tuple(str(v) for v in value)


@dataclass(frozen=True, kw_only=True)
class _Variables:
    """Where a runbook's variables come from: the inventory, extra vars, secret names. Every request
    has these (an option that changes how they are read, such as a vault password, goes here and is
    read in runbook.session.project.given_vars / request_inventory)."""

    inventory: Sequence[str] = ()
    """``-i``: inventory files, directories or ``'h1,h2,'`` lists (none: $RUNBOOK_INVENTORY,
    $ANSIBLE_INVENTORY, ./inventories/local, else the implicit localhost)."""
    extra_vars: Sequence[str] = ()
    """``-e`` as the CLI takes it: ``key=value``, a JSON/YAML mapping, or ``@file``."""
    vars: Mapping[str, Any] = field(default_factory=dict)
    """Extra vars as Python values (applied after ``extra_vars``; highest precedence)."""
    secrets: Sequence[str] = ()
    """``--secret``: variable names whose values are masked everywhere."""

    def __post_init__(self) -> None:
        for name in ("inventory", "extra_vars", "secrets"):
            object.__setattr__(self, name, _strings(getattr(self, name)))

    def with_options(self, **changes: Any) -> Any:
        """A copy with some fields changed (unknown names are a TypeError, as for the constructor)."""
        from dataclasses import replace

        return replace(self, **changes)


@dataclass(frozen=True)
class _Inputs(_Variables):
    """What a request that runs a runbook needs besides its variables: the runbook, SSH host keys,
    the audit trail, the state directory."""

    runbook: str | os.PathLike[str]
    """A runbook name (``playbooks/NAME.yml``, ``RUNBOOK_PATH``, or a declared ``name:``) or a path."""
    _: KW_ONLY
    trust_new_hosts: bool = False
    """``--trust-new-hosts``: record unknown SSH host keys (changed keys are still refused)."""
    known_hosts: str | None = None
    """``--known-hosts``: the known_hosts file (default ~/.ssh/known_hosts)."""
    audit_dir: str = field(default_factory=_audit_dir)
    """``--audit-dir`` (default $RUNBOOK_AUDIT_DIR, else ./audit)."""
    audit_key: str | None = None
    """``--audit-key``: Ed25519 signing key (default: the one `runbook audit keygen` made, if any)."""
    audit_dsn: str | None = None
    """``--audit-dsn``: also write the audit records to this PostgreSQL database."""
    audit: bool | None = None
    """Write an audit trail (None: unless $RUNBOOK_AUDIT=0)."""
    state_root: Path = Path(".runbook")
    """Where run state (snapshots, resume points) is kept."""


@dataclass(frozen=True, kw_only=True)
class RunRequest(_Inputs):
    """Run (or, with ``dry_run``, plan) one runbook: ``runbook exec`` / ``runbook plan``."""

    limit: str | None = None
    """``-l``: further limit the hosts (an inventory pattern)."""
    tags: frozenset[str] = frozenset()
    """``-t``: only steps with these tags."""
    skip_tags: frozenset[str] = frozenset()
    """``--skip-tags``: skip steps with these tags."""
    forks: int | None = None
    """``-f``: hosts in parallel (default: the runbook's forks, else 10)."""
    dry_run: bool = False
    """``--dry-run``/``plan``: probe for real, show commands and diffs, change nothing."""
    start_at: str | None = None
    """``--start-at``: the step (name or number) of the steps phase to start at."""
    resume: str | None = None
    """``--resume``: the id of a failed or interrupted run to continue."""
    yes: bool = False
    """``-y``: answer yes to approvals and to rollback on interrupt."""
    approvers: Sequence[str] = ()
    """``--approver``: who approves `approve` steps (default $RUNBOOK_APPROVER, the key's principal)."""
    force_window: bool = False
    """``--force-window``: run outside the runbook's maintenance window."""
    max_output: str | int | None = None
    """``--max-output``: output kept per stream of each command (``1M``, ``256k``, or bytes)."""
    diff: bool = False
    """``--diff``: a real run shows (and the audit digests) the diff of every file a step writes."""
    engine: str = "native"
    """``--engine``: ``native`` (runbook's own) or ``ansible`` (the compiled playbook through
    ansible-runner; docs/ansible-engine.md)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.engine not in ENGINES:
            raise UsageError(f"--engine: unknown engine '{self.engine}'", hint="native or ansible")
        object.__setattr__(self, "tags", _tags(self.tags))
        object.__setattr__(self, "skip_tags", _tags(self.skip_tags))
        object.__setattr__(self, "approvers", _strings(self.approvers))


@dataclass(frozen=True)
class RollbackRequest(_Inputs):
    """Undo what run ``run_id`` changed, from its saved snapshots: ``runbook rollback``. The inventory
    and extra vars default to the ones that run used (given ones are added on top)."""

    run_id: str
    """``--run``: the run to roll back (its id or a unique prefix)."""


@dataclass(frozen=True)
class ValidateRequest(_Variables):
    """Statically check runbooks (all of the search path when ``runbooks`` is empty): ``runbook validate``."""

    runbooks: Sequence[str | os.PathLike[str]] = ()
    _: KW_ONLY
    limit: str | None = None
    """``-l``: only check these hosts."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "runbooks", _strings(self.runbooks) if self.runbooks else ())


@dataclass
class Hooks:
    """How a run talks to whoever started it. The CLI gives its console renderer, its prompts and its
    signal handling; the Python API gives none unless asked (no prompt: approvals need ``yes`` or
    approvers, and a failed step is rolled back without asking)."""

    observers: Callable[[], Sequence[Subscriber]] | None = None
    """Made once the engine exists; each is subscribed to the run's events (before the audit
    writer) and, if it has ``close()``, closed when the run ends."""
    confirm: Callable[[str], bool] | None = None
    """Ask a yes/no question (rollback after an interrupt, approvals); None: not interactive."""
    ask_name: Callable[[str, str], str] | None = None
    """Ask who approves (question, default name); None: not interactive."""
    around_run: Callable[[], AbstractContextManager[Any]] | None = None
    """Entered just around the engine's run (the CLI: its SIGINT/SIGTERM handlers, -vvv logging)."""
    warn: Callable[[str], None] | None = None
    """Told what could not be done after the run (the audit trail could not be sealed)."""
    step_gate: Any = None
    """--step: asked before each step whether it runs (runbook.execute.stepgate.StepGate); None: all run."""
    transport_factory: Callable[[Any], Any] | None = None
    """Makes each host's transport from its runbook.execute.transports.HostSpec (None: the real
    local/SSH/Ansible ones); for tests of step kinds against a fake transport."""

