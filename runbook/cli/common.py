"""Shared CLI plumbing: error reporting, runbook resolution, inventory and extra-vars loading."""

from __future__ import annotations

import functools
import json
import os
import re
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


def error_document(exc: RunbookError) -> str:
    """The one JSON document ``--output json`` promises, for a run that could not start."""
    errors = getattr(exc, "errors", None) or [exc]

    def one(e: Any) -> dict[str, Any]:
        loc = getattr(e, "location", None)
        return {
            "message": getattr(e, "message", str(e)),
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "hint": getattr(e, "hint", None),
        }

    return json.dumps(
        {
            "status": "error",
            "exit_code": exc.exit_code,
            "message": str(errors[0]),
            "errors": [one(e) for e in errors],
        },
        indent=2,
    )


def handle_errors(fn: F) -> F:
    """User errors print as `error: file:line:col: message` + hint, never as a traceback (and, with
    ``--output json``, also as a JSON document on stdout, so a pipeline always gets one)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RunbookError as exc:
            report(exc)
            if kwargs.get("output") == "json":
                click.echo(error_document(exc))
            elif kwargs.get("output") == "junit":  # CI reads a report even when the run could not start
                from runbook.cli.output import junit_error

                click.echo(junit_error(exc), nl=False)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt, BrokenPipeError):
            raise  # a closed pipe (`| head`) is the reader's choice: main() leaves quietly
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
    if p.suffix in (".yml", ".yaml") and p.exists():
        raise UsageError(f"{p} is not a runbook file (a directory?)", hint="give the path of a .yml file")
    by_name = [path for path, declared in runbook_names() if declared == name]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise UsageError(
            f"several runbooks are named '{name}': " + ", ".join(str(x) for x in by_name),
            hint="give the file name (or path) of the one you mean",
        )
    known = sorted({f.stem for d in search_path() if d.is_dir() for f in d.glob("*.y*ml")})
    import difflib

    close = difflib.get_close_matches(p.stem if p.suffix in (".yml", ".yaml") else name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    hint += ("available: " + ", ".join(known)) if known else "create playbooks/NAME.yml or set RUNBOOK_PATH"
    raise UsageError(
        f"no runbook named '{name}' (looked in {', '.join(str(d) for d in search_path())})", hint=hint
    )


_NAME_LINE = re.compile(r"""^name:[ \t]*(?:"([^"\n]*)"|'([^'\n]*)'|([^#\n]*?))[ \t]*(?:#.*)?$""", re.M)


def runbook_names() -> list[tuple[Path, str]]:
    """(file, the `name:` it declares) of every runbook in the search path; files are read, not
    loaded (a top-level `name:` line), so listing them stays fast and never fails."""
    out = []
    for d in search_path():
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.y*ml")):
            try:
                if f.stat().st_size > 4 * 1024 * 1024:
                    continue
                m = _NAME_LINE.search(f.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            if m:
                out.append((f, _declared_name(f) or next(g for g in m.groups() if g is not None).strip()))
    return out


def _declared_name(path: Path) -> str | None:
    """The runbook's `name:` as YAML reads it (quotes, escapes), or None if the file does not parse."""
    from runbook.model.loader import load_yaml_text

    try:
        data = load_yaml_text(path.read_text(encoding="utf-8"), str(path))
    except (RunbookError, OSError, UnicodeDecodeError, RecursionError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name.strip() if isinstance(name, str) else None


def complete_runbooks(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    """Shell completion of a runbook NAME: the file names and the declared `name:`s."""
    from click.shell_completion import CompletionItem

    names = {f.stem for d in search_path() if d.is_dir() for f in d.glob("*.y*ml")}
    names |= {n for _, n in runbook_names() if n and not any(c.isspace() for c in n)}
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


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


def load_inventory(sources: tuple[str, ...] | list[str], playbook_dir: Path | None = None) -> Any:
    """The inventory; ``playbook_dir`` (the runbook's folder, as ansible-playbook uses the playbook's)
    may hold group_vars/ and host_vars/ that win over the ones beside the inventory. Without it, the
    current directory plays that part, as for ansible-inventory."""
    from runbook.model.inventory import load_inventory as _load

    pdir = str(playbook_dir) if playbook_dir is not None else None

    srcs = list(sources) or ([default_inventory()] if default_inventory() else [])
    if not srcs:
        return _load(["localhost,"], playbook_dir=pdir)
    for s in srcs:
        if "," not in s and not Path(s).exists():
            raise UsageError(
                f"inventory not found: {s}", hint="give -i PATH (a file or directory) or -i 'host1,host2,'"
            )
    return _load(srcs, playbook_dir=pdir)


def parse_extra_vars(values: tuple[str, ...], secrets: set[str] | None = None) -> dict[str, Any]:
    """-e key=value (several per flag, quoted like a shell), -e '{"json": 1}', -e @vars.yml (an
    ansible-vault encrypted file too: its variable names are added to ``secrets``)."""
    from runbook.model import shellwords
    from runbook.model.loader import load_vars_file, load_yaml_text
    from runbook.model.values import NumberTooLarge, is_variable_name, json_int

    out: dict[str, Any] = {}
    for raw in values:
        text = raw.strip()
        if text.startswith("@"):
            if not text[1:].strip():
                raise UsageError("-e @: no file named after the @", hint="write -e @vars.yml")
            path = Path(text[1:].strip())
            if not path.exists():
                raise UsageError(f"extra vars file not found: {path}", hint="check the path after -e @")
            data, encrypted = load_vars_file(path, "extra vars file")
            what = f"extra vars file {path}"
            if encrypted and secrets is not None and isinstance(data, dict):
                secrets.update(str(k) for k in data)
        elif text.startswith(("{", "[")):
            try:
                data = json.loads(text, parse_int=json_int)
            except NumberTooLarge as exc:
                raise UsageError(f"-e: {exc}", hint="quote it if it is meant as text") from None
            except ValueError:
                data = load_yaml_text(text, "-e")  # YAML flow style: {a: 1}; errors name -e:1:col
            what = f"-e {raw!r}"
        else:
            try:
                tokens = shellwords.split(text)
            except ValueError as exc:
                raise UsageError(f"-e {raw!r}: {exc}", hint="check the quotes in the value") from None
            for tok in tokens:
                if "=" not in tok:
                    raise UsageError(f"-e {tok!r}: expected key=value, a JSON mapping or @file")
                k, v = tok.split("=", 1)
                if not is_variable_name(k):
                    raise UsageError(f"-e {tok!r}: '{k}' is not a valid variable name")
                out[k] = v
            continue
        if not isinstance(data, dict):
            raise ValidationError(
                f"{what} must hold a mapping of variables (name: value)",
                hint='e.g. -e \'{"version": "1.2"}\' or a YAML file of name: value lines',
            )
        bad = [k for k in data if not is_variable_name(k)]
        if bad:
            raise ValidationError(
                f"{what}: {bad[0]!r} is not a valid variable name",
                location=getattr(data, "key_loc", lambda k: None)(bad[0]),
                hint="use letters, digits and _ (not starting with a digit)",
            )
        out.update(data)
    return out


def select_hosts(rb: Any, inventory: Any, limit: str | None) -> list[str]:
    """The runbook's hosts (its `hosts:` pattern, then --limit); none at all is a usage error
    pointing at the runbook's `hosts:` line."""
    hosts = inventory.select(rb.hosts)
    if not hosts and any(
        p.strip() in ("localhost", "127.0.0.1") for p in rb.hosts.replace(",", ":").split(":")
    ):
        hosts = ["localhost"]  # Ansible's implicit localhost
    matched = bool(hosts)
    if limit:
        allowed = set(inventory.select(limit))
        if limit.strip() in ("localhost", "127.0.0.1"):
            allowed.add(limit.strip())
        hosts = [h for h in hosts if h in allowed]
    if not hosts:
        where = rb.loc("hosts") if hasattr(rb, "loc") else None
        raise UsageError(
            f"no hosts match '{rb.hosts}'"
            + (f" with --limit {limit}" if limit and matched else "")
            + " in the inventory",
            location=where,
            hint="check -i/--inventory and the runbook's hosts: (groups: "
            + ", ".join(sorted(inventory.groups)[:20])
            + ")",
        )
    return hosts


def host_problems(
    rb: Any,
    inventory: Any,
    hosts: list[str],
    extra_vars: dict[str, Any],
    project_dir: Path,
    declared: set[str] | frozenset[str] = frozenset(),
) -> list[Any]:
    """Render everything that can be rendered before a run, for every host (undefined variables,
    template files, loops): validate reports these, and exec can refuse to start on them. Their
    messages are redacted: no secret in a validation error."""
    from runbook.plan import validate as v
    from runbook.render.secrets import Redactor, collect_secrets, register_origins
    from runbook.render.templar import LazyVars, Templar

    redactor = register_origins(
        Redactor(), runbook=rb, inventory=inventory, extra_vars=extra_vars, declared=declared
    )
    templar = Templar(redactor)
    problems: list[Any] = []
    seen: set[str] = set()
    groups = {g: inventory.select(g) for g in inventory.groups}  # once, not once per host
    from runbook.execute.magic import operator

    # what a run's `run` holds (runbook.execute.engine): its id and status are known at run time
    run_info = {"id": "validate", "status": "running", "dry_run": True, "runbook": rb.name, "operator": operator()}
    for host in hosts:
        known = host in inventory.hosts
        hv = inventory.host_vars(host) if known else {"ansible_connection": "local"}
        magic = {"inventory_hostname": host, "host": host, "group_names": inventory.group_names(host) if known else [],
                 "groups": groups, "hostvars": v.HostVarsBefore(inventory, rb, extra_vars), "run": run_info,
                 "playbook_dir": str(rb.path.parent), "runbook_dir": str(rb.path.parent), "ansible_check_mode": True,
                 "snapshots": {}, "inventory_hostname_short": host.split(".")[0],
                 "ansible_play_hosts": list(hosts), "ansible_play_batch": list(hosts), "ansible_play_hosts_all": list(hosts)}  # fmt: skip
        layers = [
            (extra_vars, False),
            (magic, True),
            (dict(rb.vars), False),
            (hv, False),
            (dict(rb.defaults), False),
        ]
        redactor.add(collect_secrets(hv, names=redactor.names))
        for p in v.check_host(rb, LazyVars(layers, templar), templar, host, project_dir):
            p.error.message = redactor.redact(p.error.message)
            if p.error.hint:
                p.error.hint = redactor.redact(p.error.hint)
            key = str(p.error)
            if key not in seen:  # the same problem on 500 hosts is reported once
                seen.add(key)
                problems.append(p)
    return problems


def secret_names(declared: tuple[str, ...]) -> set[str]:
    """``--secret NAME`` (repeatable, or comma-separated): variables that hold secrets."""
    from runbook.model.values import is_variable_name

    names = {n.strip() for item in declared for n in item.split(",") if n.strip()}
    bad = sorted(n for n in names if not is_variable_name(n))
    if bad:
        raise UsageError(f"--secret {bad[0]!r} is not a variable name", hint="e.g. --secret bearer")
    return names


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
