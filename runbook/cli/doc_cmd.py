"""`runbook doc MODULE` (as ansible-doc): a module's arguments, what it registers, whether it
mutates, has an undo and a verified rollback, and an example (from the shipped playbooks)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import click

from runbook.cli.common import handle_errors
from runbook.errors import UsageError

WIDTH = 78


@click.command("doc")
@click.argument("module", required=False, shell_complete=lambda ctx, param, incomplete: _complete(incomplete))
@click.option("-l", "--list", "as_list", is_flag=True, help="List every module with its short description.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def doc_cmd(module: str | None, as_list: bool, as_json: bool) -> None:
    """Show the documentation of MODULE (e.g. `runbook doc postgres.backup`), or --list them all."""
    from runbook.kinds.moddoc import module_doc, module_names

    if as_list or not module:
        docs = [module_doc(n) for n in module_names()]
        if as_json:
            click.echo(json.dumps({d.name: d.description for d in docs if d}, indent=2))
            return
        width = max(len(d.name) for d in docs if d)
        for d in docs:
            if d:
                first = d.description.split(". ")[0].rstrip(".")
                click.echo(f"{d.name:<{width}}  {_cut(first, WIDTH - width - 2)}")
        return
    doc = module_doc(module)
    if doc is None:
        import difflib

        close = difflib.get_close_matches(module, module_names(), n=3)
        raise UsageError(
            f"no module named '{module}'",
            hint=(f"did you mean {', '.join(close)}? " if close else "") + "`runbook doc --list` lists them",
        )
    example, source = shipped_example(module)
    if as_json:
        click.echo(json.dumps({**doc.as_dict(), "example": example, "example_source": source}, indent=2))
        return
    out = [f"> {doc.name.upper()}", *_wrap(doc.description, "  "), ""]
    for label, text in (("mutates", doc.mutates), ("undo", doc.undo), ("verify", doc.verify)):
        out += _wrap(f"{label + ':':<9}{text}", "  ", " " * 11)
    if doc.free_form:
        out.append(f"  also written as a bare string: `{doc.name}: TEXT` (that is {doc.free_form}: TEXT)")
    out += ["", "ARGUMENTS" if doc.arguments else "ARGUMENTS: none"]
    for a in doc.arguments:
        flags = [a.type, "required" if a.required else ""] + ([f"default: {a.default}"] if a.default else [])
        out.append(f"  {a.name} ({', '.join(f for f in flags if f)})")
        if a.description:
            out += _wrap(a.description, "      ")
    out += ["", "REGISTERS (register: NAME, then NAME.FIELD)"]
    for k, v in doc.registers.items():
        out += _wrap(f"{k}: {v}", "  ", "      ")
    out += _wrap("and, like every module: " + ", ".join(doc.common_registers), "  ", "      ")
    out += ["", "EXAMPLE" + (f" (from {source})" if source else "")]
    out += ["  " + line for line in example.splitlines()]
    click.echo("\n".join(out))


def _complete(incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    from runbook.kinds.moddoc import module_names

    return [CompletionItem(n) for n in module_names() if n.startswith(incomplete)]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _wrap(text: str, indent: str, subsequent: str | None = None) -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()), WIDTH, initial_indent=indent, subsequent_indent=subsequent or indent
    ) or [indent]


def shipped_example(module: str) -> tuple[str, str]:
    """The first step using ``module`` in the shipped playbooks, as written there (and where), or a
    generated one from the module's required arguments."""
    import yaml

    from runbook.cli.examples import example_files
    from runbook.errors import RunbookError
    from runbook.kinds.base import KnownModules
    from runbook.kinds.moddoc import generated_example, module_doc
    from runbook.model.runbook import load_runbook

    try:
        files = [(rel, p) for rel, p in example_files() if rel.startswith("playbooks/")]
    except RunbookError:
        files = []
    for rel, path in files:
        try:
            rb = load_runbook(path, KnownModules())
        except RunbookError:
            continue
        for step in _all_steps(rb):
            if step.module == module and step.location.line:
                text = _step_text(path, step.location.line)
                if text:
                    return text, f"{rel}:{step.location.line}"
    doc = module_doc(module)
    assert doc is not None
    return yaml.safe_dump([generated_example(doc)], sort_keys=False).rstrip(), ""


def _all_steps(rb: Any) -> list[Any]:
    out: list[Any] = []

    def walk(steps: Any) -> None:
        for s in steps:
            out.append(s)
            walk(getattr(s, "fallback", ()) or ())

    walk(rb.all_steps())
    return out


def _step_text(path: Path, line: int, limit: int = 25) -> str:
    """The YAML of the step starting at ``line`` (its ``- `` item), up to ``limit`` lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not 0 < line <= len(lines):
        return ""
    first = lines[line - 1]
    stripped = first.lstrip()
    indent = len(first) - len(stripped)
    if stripped.startswith("- "):
        dash = indent
    else:  # the location points at the mapping after "- ": find its dash
        dash = indent - 2
        for back in range(line - 1, max(line - 3, 0) - 1, -1):
            candidate = lines[back - 1] if back >= 1 else ""
            if candidate.lstrip().startswith("- "):
                line, first = back, candidate
                dash = len(candidate) - len(candidate.lstrip())
                break
    body = [first[dash:]]
    for text in lines[line:]:
        if text.strip() and len(text) - len(text.lstrip()) <= dash:
            break
        body.append(text[dash:] if len(text) >= dash else text.strip())
    while body and not body[-1].strip():
        body.pop()
    if len(body) > limit:
        body = [*body[:limit], "  # …"]
    return "\n".join(body)
