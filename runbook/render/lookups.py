"""Ansible's ``lookup()`` / ``query()`` for the four lookups runbooks use: env, file, pipe, template.
They run on the control machine, as Ansible's do.

``pipe`` runs a command. A value never becomes one: every template is checked when it is compiled
(``check_lookups``): the lookup's name must be written literally, and pipe's command too — a
variable (an inventory value, a registered output, an -e value) cannot be the command, nor can
``lookup`` be passed around as a value. The command is run with a bounded time (PIPE_TIMEOUT) in the
runbook's directory, like Ansible's (relative to the playbook's directory)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

from runbook.render.filters import FilterError

LOOKUPS = ("env", "file", "pipe", "template")
LOOKUP_FUNCS = ("lookup", "query", "q")
PIPE_TIMEOUT = 60.0
MAX_FILE = 16 * 1024 * 1024


class LookupRefused(FilterError):
    pass


def _name(value: str) -> str:
    return value.removeprefix("ansible.builtin.")


def check_lookups(tree: nodes.Template) -> str | None:
    """Why the template's use of lookup()/query() is refused (None: it is fine)."""
    calls = {id(c.node) for c in tree.find_all(nodes.Call) if isinstance(c.node, nodes.Name)}
    for ref in tree.find_all(nodes.Name):
        if ref.name in LOOKUP_FUNCS and ref.ctx == "load" and id(ref) not in calls:
            return f"'{ref.name}' may only be called (e.g. lookup('env', 'HOME')), not used as a value"
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name in LOOKUP_FUNCS):
            continue
        if (
            not call.args
            or not isinstance(call.args[0], nodes.Const)
            or not isinstance(call.args[0].value, str)
        ):
            return (
                f"{call.node.name}(): the lookup's name must be written literally, e.g. lookup('env', 'HOME')"
            )
        name = _name(call.args[0].value)
        if name not in LOOKUPS:
            return (
                f"lookup {name!r} is not supported (runbook has {', '.join(LOOKUPS)}); read values from "
                "vars, the inventory or a registered step's result instead"
            )
        if name == "pipe" and (
            len(call.args) != 2 or not isinstance(call.args[1], nodes.Const) or call.kwargs or call.dyn_args
        ):
            return (
                "lookup('pipe', ...) runs only a command written literally in the runbook, e.g. "
                "lookup('pipe', 'git rev-parse HEAD'): a value never becomes a command (use a shell: "
                "step with register: to run one built from variables)"
            )
    return None


def _dirs(context: Any) -> list[Path]:
    base = context.get("runbook_dir") or context.get("playbook_dir")
    return [Path(str(base))] if base else [Path.cwd()]


def _find(context: Any, term: str, sub: str) -> Path:
    p = Path(term)
    if p.is_absolute():
        if p.is_file():
            return p
        raise FilterError(f"lookup: file not found: {term}")
    for d in _dirs(context):  # as Ansible searches: <dir>/files|templates/<term>, then <dir>/<term>
        for cand in (d / sub / term, d / term):
            if cand.is_file():
                return cand
    raise FilterError(f"lookup: file not found: {term} (looked in {sub}/ and the runbook's directory)")


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE:
        raise FilterError(f"lookup: {path} is larger than {MAX_FILE // 1024 // 1024} MiB")
    return path.read_text(encoding="utf-8", errors="surrogateescape")


def _one(context: Any, name: str, term: Any, kw: Mapping[str, Any]) -> Any:
    if name == "env":
        return os.environ.get(str(term), kw.get("default", ""))
    if name == "file":
        text = _read(_find(context, str(term), "files"))
        return text.rstrip() if kw.get("rstrip", True) else text
    if name == "template":
        path = _find(context, str(term), "templates")
        from runbook.render.templar import compile_template

        t = compile_template(_read(path))
        return t.render(dict(context.get_all()), **dict(kw.get("template_vars") or {}))
    if name == "pipe":
        import subprocess  # only for lookup('pipe'): a template that runs nothing never needs it

        try:
            done = subprocess.run(
                str(term), shell=True, capture_output=True, timeout=PIPE_TIMEOUT, cwd=str(_dirs(context)[0]),
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise FilterError(f"lookup('pipe'): {term!r} did not finish within {PIPE_TIMEOUT:g}s") from None
        if done.returncode != 0:
            raise FilterError(f"lookup('pipe'): {term!r} exited with {done.returncode}")
        return done.stdout.decode("utf-8", "surrogateescape").rstrip()
    raise FilterError(f"lookup {name!r} is not supported")  # pragma: no cover - refused at compile


def _run(context: Any, name: str, terms: tuple[Any, ...], kw: Mapping[str, Any]) -> list[Any]:
    name = _name(name)
    flat: list[Any] = []
    for t in terms:
        flat.extend(t if isinstance(t, list) else [t])
    kw = {k: v for k, v in kw.items() if k not in ("wantlist", "errors")}
    return [_one(context, name, t, kw) for t in flat]


@jinja2.pass_context
def lookup(context: Any, name: str, *terms: Any, wantlist: bool = False, **kw: Any) -> Any:
    values = _run(context, name, terms, kw)
    if wantlist:
        return values
    return ",".join(str(v) for v in values) if len(values) != 1 else values[0]


@jinja2.pass_context
def query(context: Any, name: str, *terms: Any, **kw: Any) -> list[Any]:
    return _run(context, name, terms, kw)
