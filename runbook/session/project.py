"""Where a run's inputs come from: the runbook file (by name, path or declared `name:`), the project
directory, the inventory, ``-e`` extra vars and ``--secret`` names, and what a saved run brings back
(its -e values). One home for these rules: the CLI and the Python API (runbook.session) both use them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook.errors import RunbookError, UsageError, ValidationError
from runbook.model.lazyre import lazy_re

if TYPE_CHECKING:
    from runbook.model.inventory import Inventory
    from runbook.model.inventory_view import InventoryView
    from runbook.model.runbook import Runbook


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


_NAME_LINE = lazy_re(r"""^name:[ \t]*(?:"([^"\n]*)"|'([^'\n]*)'|([^#\n]*?))[ \t]*(?:#.*)?$""", re.M)


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


def project_dir_for(path: Path) -> Path:
    """The project root: the directory holding playbooks/ (templates/, files/ are looked up there)."""
    path = path.resolve()
    if path.parent.name == "playbooks":
        return path.parent.parent
    return Path.cwd()


def default_inventory() -> str | None:
    """The inventory used without -i (RUNBOOK_INVENTORY, ANSIBLE_INVENTORY, ansible.cfg,
    inventories/local: runbook.model.ansible_setup), comma-joined; None when there is none."""
    from runbook.model.ansible_setup import default_sources

    srcs = default_sources()
    return ",".join(srcs) if srcs else None


def load_inventory(sources: tuple[str, ...] | list[str], playbook_dir: Path | None = None) -> Inventory:
    """The inventory; ``playbook_dir`` (the runbook's folder, as ansible-playbook uses the playbook's)
    may hold group_vars/ and host_vars/ that win over the ones beside the inventory. Without it, the
    current directory plays that part, as for ansible-inventory. Without -i: RUNBOOK_INVENTORY,
    ANSIBLE_INVENTORY, ansible.cfg, inventories/local (runbook.model.ansible_setup)."""
    from runbook.model.ansible_setup import default_sources
    from runbook.model.ansible_setup import load_inventory as _load

    srcs = list(sources) or default_sources()
    for s in srcs:
        if "," not in s and not Path(s).exists():
            raise UsageError(
                f"inventory not found: {s}", hint="give -i PATH (a file or directory) or -i 'host1,host2,'"
            )
    return _load(srcs, playbook_dir=str(playbook_dir) if playbook_dir is not None else None)


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


def select_hosts(rb: Runbook, inventory: InventoryView, limit: str | None) -> list[str]:
    """The runbook's hosts (its `hosts:` pattern, then --limit); none at all is a usage error
    pointing at the runbook's `hosts:` line."""
    from runbook.model.hostpattern import is_localhost, names_localhost

    hosts = inventory.select(rb.hosts)
    if not hosts and names_localhost(rb.hosts):
        hosts = ["localhost"]  # Ansible's implicit localhost
    matched = bool(hosts)
    if limit:
        allowed = set(inventory.select(limit))
        if is_localhost(limit):
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


def inventory_sources(inventories: tuple[str, ...] | list[str]) -> list[str]:
    """Inventory sources as the saved state keeps them: absolute paths (or 'h1,h2,' lists)."""
    return [s if "," in s or not Path(s).exists() else str(Path(s).resolve()) for s in inventories]


def same_runbook(state: Any, path: Path) -> None:
    """A saved run continues (resume, rollback) only with the runbook it was a run of."""
    saved = state.meta.get("runbook")
    if saved and Path(saved).resolve() != path.resolve():
        raise UsageError(
            f"run {state.run_id} was a run of {saved}, not of {path}",
            hint=f"give the runbook that run used: {Path(saved).stem}",
        )


def given_vars(request: Any, declared: set[str]) -> dict[str, Any]:
    """A request's extra vars: its ``-e`` strings parsed (vault files add their names to
    ``declared``), then its Python ``vars`` on top. Every session reads them here."""
    return {**parse_extra_vars(tuple(request.extra_vars), declared), **request.vars}


def request_inventory(request: Any, sources: tuple[str, ...] | list[str], playbook_dir: Path | None) -> Any:
    """The inventory a request names (``sources``: its own, or the saved run's). Every session
    loads it here."""
    return load_inventory(sources, playbook_dir=playbook_dir)
