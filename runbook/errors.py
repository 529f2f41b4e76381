"""One error hierarchy. Every user-facing error carries where it happened and what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    file: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out


class RunbookError(Exception):
    """Base of every error `runbook` reports to a user (never shown as a traceback)."""

    exit_code = 2

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        out = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            out += f"\n  hint: {self.hint}"
        return out


class ValidationError(RunbookError):
    """The runbook file is malformed (schema, YAML, unknown module, bad template syntax)."""


class InventoryError(RunbookError):
    """The inventory cannot be read the way Ansible would read it."""


class RenderError(RunbookError):
    """A Jinja2 template failed to render (undefined variable, filter error)."""


class TransportError(RunbookError):
    """A host could not be reached or a connection dropped."""

    exit_code = 1


class HostKeyError(TransportError):
    """A host key is unknown or changed; strict checking refused it."""


class AuditError(RunbookError):
    """The audit trail could not be written or verified."""

    exit_code = 1


class UsageError(RunbookError):
    """Bad command-line usage."""


class MissingExtra(RunbookError):
    """A Python package that only some modules need is not installed (an optional extra)."""


# the optional extras of `pip install runbook[...]`: importable module -> extra (pyproject.toml)
EXTRAS = {"psycopg": "postgres", "redis": "redis"}


def require_extra(module: str, needed_by: str, install: str | None = None) -> None:
    """Import ``module`` or raise MissingExtra naming the extra that installs it (``install``: what
    to pip install instead, for a package that is not one of runbook's extras)."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        if install:
            raise MissingExtra(
                f"{needed_by} needs the Python package {module}, which is not installed ({exc}): "
                f"pip install '{install}'",
                hint=f"install it: pip install '{install}'",
            ) from None
        extra = EXTRAS.get(module, "all")
        raise MissingExtra(
            f"{needed_by} needs the Python package {module}, which is not installed ({exc}): "
            f"pip install 'runbook[{extra}]'",
            hint=f"install the extra: pip install 'runbook[{extra}]' (or 'runbook[all]')",
        ) from None


class RefusedError(RunbookError):
    """The run was refused before it changed anything (window closed, audit directory in use or not
    writable): exit 3, as for a failed pre-flight."""

    exit_code = 3


class Aborted(BaseException):
    """Ctrl-C a second time: stop at once — no rollback, no further step; the state is saved and
    the audit sealed on the way out (exit 130). Raised in the main thread by the CLI's handler."""
