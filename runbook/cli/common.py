"""Shared CLI plumbing: error reporting, runbook resolution, inventory and extra-vars loading."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from runbook.errors import RunbookError, UsageError, ValidationError

F = TypeVar("F", bound=Callable[..., Any])


def report(exc: RunbookError) -> None:
    errors = getattr(exc, "errors", None) or [exc]
    for e in errors:
        click.secho(f"error: {e}", fg="red", err=True)
    if len(errors) > 1:
        click.secho(f"{len(errors)} errors", fg="red", err=True)


def handle_errors(fn: F) -> F:
    """User errors print as `error: file:line:col: message` + hint, never as a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RunbookError as exc:
            report(exc)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("RUNBOOK_DEBUG"):
                traceback.print_exc()
            click.secho(f"internal error: {type(exc).__name__}: {exc}", fg="red", err=True)
            click.secho("  this is a bug in runbook; rerun with RUNBOOK_DEBUG=1 for a traceback", err=True)
            sys.exit(70)

    return wrapper  # type: ignore[return-value]


def search_path() -> list[Path]:
    dirs = [Path.cwd() / "playbooks"]
    for d in os.environ.get("RUNBOOK_PATH", "").split(os.pathsep):
        if d:
            dirs.append(Path(d))
    return dirs


def resolve_runbook(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yml", ".yaml") and p.is_file():
        return p
    for d in search_path():
        for ext in (".yml", ".yaml"):
            cand = d / f"{name}{ext}"
            if cand.is_file():
                return cand
    known = sorted({f.stem for d in search_path() if d.is_dir() for f in d.glob("*.y*ml")})
    raise UsageError(
        f"no runbook named '{name}' (looked in {', '.join(str(d) for d in search_path())})",
        hint=("available: " + ", ".join(known)) if known else "create playbooks/NAME.yml or set RUNBOOK_PATH",
    )


def project_dir_for(path: Path) -> Path:
    """The project root: the directory holding playbooks/ (templates/, files/ are looked up there)."""
    path = path.resolve()
    if path.parent.name == "playbooks":
        return path.parent.parent
    return Path.cwd()


def default_inventory() -> str | None:
    env = os.environ.get("RUNBOOK_INVENTORY") or os.environ.get("ANSIBLE_INVENTORY")
    if env:
        return env
    local = Path("inventories/local")
    return str(local) if local.exists() else None


def load_inventory(sources: tuple[str, ...] | list[str]) -> Any:
    from runbook.model.inventory import load_inventory as _load

    srcs = list(sources) or ([default_inventory()] if default_inventory() else [])
    if not srcs:
        return _load(["localhost,"])
    for s in srcs:
        if "," not in s and not Path(s).exists():
            raise UsageError(
                f"inventory not found: {s}", hint="give -i PATH (a file or directory) or -i 'host1,host2,'"
            )
    return _load(srcs)


def parse_extra_vars(values: tuple[str, ...]) -> dict[str, Any]:
    """-e key=value (several per flag, quoted like a shell), -e '{"json": 1}', -e @vars.yml."""
    import shlex

    import yaml

    out: dict[str, Any] = {}
    for raw in values:
        text = raw.strip()
        if text.startswith("@"):
            path = Path(text[1:])
            if not path.exists():
                raise UsageError(f"extra vars file not found: {path}")
            from runbook.model.loader import load_yaml_file

            data = load_yaml_file(path)
            if not isinstance(data, dict):
                raise ValidationError(f"extra vars file {path} must hold a mapping")
            out.update(data)
        elif text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                data = yaml.safe_load(text)
            if not isinstance(data, dict):
                raise UsageError(f"-e {raw!r}: expected a JSON/YAML mapping")
            out.update(data)
        else:
            for tok in shlex.split(text):
                if "=" not in tok:
                    raise UsageError(f"-e {tok!r}: expected key=value, a JSON mapping or @file")
                k, v = tok.split("=", 1)
                if not k.isidentifier():
                    raise UsageError(f"-e {tok!r}: '{k}' is not a valid variable name")
                out[k] = v
    return out


def select_hosts(rb: Any, inventory: Any, limit: str | None) -> list[str]:
    hosts = inventory.select(rb.hosts)
    if not hosts and any(
        p.strip() in ("localhost", "127.0.0.1") for p in rb.hosts.replace(",", ":").split(":")
    ):
        hosts = ["localhost"]  # Ansible's implicit localhost
    if limit:
        allowed = set(inventory.select(limit))
        if limit.strip() in ("localhost", "127.0.0.1"):
            allowed.add(limit.strip())
        hosts = [h for h in hosts if h in allowed]
    return hosts


def restore_extra_vars(state: Any, given: dict[str, Any], what: str) -> dict[str, Any]:
    """The -e values a saved run used, with the ones given now on top. Secret ones were not saved
    (the state masks them): each must be given again, else a usage error names the missing ones."""
    secret = [str(n) for n in state.meta.get("secret_extra_vars") or ()]
    missing = [n for n in secret if n not in given]
    if missing:
        raise UsageError(
            f"run {state.run_id} was started with secret extra vars that its saved state does not keep: "
            + ", ".join(missing),
            hint=f"pass them again for {what}: "
            + " ".join(f"-e {n}=..." for n in missing)
            + " (or -e @file with them)",
        )
    saved = {k: v for k, v in (state.meta.get("extra_vars") or {}).items() if k not in secret}
    return {**saved, **given}
