"""Variables put into shell text unquoted: ``runbook validate``'s warning (like ansible-lint's).

A ``shell:`` command is the runbook author's code; the values in it are not. ``echo {{ name }}`` runs
whatever ``name`` holds (``$(touch PWNED)``, ``; rm -rf``, a backtick) as soon as the step is rendered —
in a dry-run's read-only probes too. Written ``{{ name | quote }}`` the value is one literal word.

Step kinds name the arguments a shell (or a shell-like split) reads in ``shell_args``. For each
``{{ expression }}`` in them this finds where it lands in the shell text (outside quotes, inside
'single' or "double" quotes, in a comment) and warns unless its value cannot change the command:

- outside quotes: the expression ends in ``| quote`` (or ``shell_quote``), or is a number, a boolean,
  a literal, a test or a comparison (``| int``, ``| float``, ``| length``, ``x is defined``, ``a > b``);
- inside quotes or a here-document: only numbers, booleans and literals — ``"{{ x | quote }}"``
  still runs ``$(...)`` (the shell expands it inside double quotes and here-documents), a ``'`` in
  the value ends single quotes, a line equal to the end word ends a here-document.

Warnings are advice with file:line, never errors: validate still exits 0 for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

from runbook.errors import Location
from runbook.kinds import base as kinds
from runbook.model.lazyre import lazy_re
from runbook.model.runbook import Runbook
from runbook.render.templar import ENV

QUOTING = frozenset({"quote", "shell_quote"})
# filters whose result is a number, a boolean or hex/base64 text: no shell metacharacter can appear
PLAIN_RESULT = frozenset({
    "int", "float", "abs", "round", "length", "count", "bool", "b64encode", "hash", "checksum",
    "sha1", "sha256", "md5", "human_to_bytes", "version_compare",
})  # fmt: skip
# filters that keep a safe value safe (``x | int | default(0)``)
PASS_THROUGH = frozenset({"default", "d"})


@dataclass(frozen=True)
class ShellVarWarning:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def _safe(node: nodes.Node, quoted_ok: bool) -> bool:
    """Can this expression's value change the shell command it lands in? (False: it can.)"""
    if isinstance(node, nodes.Const | nodes.Test | nodes.Compare | nodes.Not):
        return True  # a literal the author wrote, a boolean
    if isinstance(node, nodes.Filter):
        if node.name in QUOTING:
            return quoted_ok
        if node.name in PLAIN_RESULT:
            return True
        if node.name in PASS_THROUGH and node.node is not None:
            return _safe(node.node, quoted_ok) and all(_safe(a, quoted_ok) for a in node.args)
        return False
    if isinstance(node, nodes.CondExpr):
        return _safe(node.expr1, quoted_ok) and (node.expr2 is None or _safe(node.expr2, quoted_ok))
    if isinstance(node, nodes.Concat):
        return all(_safe(n, quoted_ok) for n in node.nodes)
    if isinstance(node, nodes.Sub | nodes.Div | nodes.FloorDiv | nodes.Pow | nodes.Neg | nodes.Pos):
        return True  # numbers only (a string operand is an error, not text)
    if isinstance(node, nodes.Add | nodes.Mul | nodes.Mod | nodes.And | nodes.Or):
        return _safe(node.left, quoted_ok) and _safe(node.right, quoted_ok)
    return False  # a variable, an attribute, a call, another filter: anything may come out


class _Shell:
    """Where the shell is in its text, fed piece by piece (the text between ``{{ }}``): plain,
    single, double (quotes), comment, or heredoc (the body of a ``<<WORD`` here-document)."""

    _WORD_END = frozenset(" \t\n;|&<>()")

    def __init__(self) -> None:
        self.state = "plain"
        self.prev = " "
        self.escaped = False
        self.word: list[str] | None = None  # the here-document's end word being read
        self.strip_tabs = False
        self.pending: list[tuple[str, bool]] = []  # here-documents that start after this line
        self.doc: tuple[str, bool] | None = None
        self.line: list[str] = []
        self.arith = 0  # inside $(( )): `<<` is a shift there, not a here-document
        self.before = " "  # the character before prev

    def feed(self, text: str) -> None:
        for ch in text:
            self._char(ch)
            self.before, self.prev = self.prev, ch

    def _char(self, ch: str) -> None:
        if self.state == "heredoc":
            if ch != "\n":
                self.line.append(ch)
                return
            assert self.doc is not None
            line = "".join(self.line)
            self.line = []
            if (line.lstrip("\t") if self.doc[1] else line) == self.doc[0]:
                self.doc = self.pending.pop(0) if self.pending else None
                self.state = "heredoc" if self.doc else "plain"
            return
        if self.word is not None and self.state == "plain":  # reading `<<[-] WORD`
            if not self.word and ch == "-" and self.prev == "<" and not self.strip_tabs:
                self.strip_tabs = True
                return
            if ch in " \t" and not self.word:
                return
            if ch not in self._WORD_END:
                if ch not in "'\"\\":
                    self.word.append(ch)
                return
            if self.word:
                self.pending.append(("".join(self.word), self.strip_tabs))
            self.word = None
        if self.escaped:
            self.escaped = False
        elif self.state == "plain":
            if ch == "\\":
                self.escaped = True
            elif ch == "'":
                self.state = "single"
            elif ch == '"':
                self.state = "double"
            elif ch == "#" and (self.prev.isspace() or self.prev in ";&|()"):
                self.state = "comment"
            elif ch == "(" and self.prev == "(" and self.before == "$":
                self.arith += 1
            elif ch == ")" and self.prev == ")" and self.arith:
                self.arith -= 1
            elif ch == "<" and self.prev == "<" and not self.arith:
                self.word, self.strip_tabs = [], False
            elif ch == "\n" and self.pending:
                self.doc = self.pending.pop(0)
                self.state = "heredoc"
        elif self.state == "single":
            if ch == "'":
                self.state = "plain"
        elif self.state == "double":
            if ch == "\\":
                self.escaped = True
            elif ch == '"':
                self.state = "plain"
        elif self.state == "comment" and ch == "\n":
            self.state = "plain"
            if self.pending:
                self.doc = self.pending.pop(0)
                self.state = "heredoc"


def expressions(text: str) -> Iterator[tuple[str, int, str]]:
    """(expression source, line within ``text``, shell quoting state) of each ``{{ }}`` in it."""
    try:
        tokens = list(ENV.lex(text))
    except jinja2.TemplateSyntaxError:
        return  # reported as an error by validate's syntax check
    shell = _Shell()
    current: list[str] | None = None
    start = 1
    for lineno, kind, value in tokens:
        if kind == "data":
            shell.feed(value)
        elif kind == "variable_begin":
            current, start = [], lineno
        elif kind == "variable_end" and current is not None:
            yield "".join(current).strip(), start, shell.state
            shell.prev = "x"  # the value is a word: a `#` right after it starts no comment
            current = None
        elif current is not None:
            current.append(value)


def _node(expr: str) -> nodes.Node | None:
    try:
        tree = ENV.parse("{{ " + expr + " }}")
    except jinja2.TemplateSyntaxError:
        return None
    out = tree.body[0] if tree.body else None
    if isinstance(out, nodes.Output) and len(out.nodes) == 1:
        return out.nodes[0]
    return None


def problem(expr: str, state: str) -> str | None:
    """Why ``{{ expr }}`` is unsafe where it lands (None: it is not)."""
    if state == "comment":
        return None
    node = _node(expr)
    if node is None or _safe(node, quoted_ok=state == "plain"):
        return None
    quoted = f"{{{{ {expr} | quote }}}}"
    if state == "double":
        return (
            f"{{{{ {expr} }}}} is inside double quotes, where $(...) and `...` in its value still run "
            f"(| quote does not help there): drop the quotes and write {quoted}"
        )
    if state == "heredoc":
        return (
            f"{{{{ {expr} }}}} is inside a here-document, where $(...) in its value runs and a line "
            f"equal to its end word ends it: pass it in env: instead, or write it with copy/template"
        )
    if state == "single":
        return (
            f"{{{{ {expr} }}}} is inside single quotes, which a ' in its value ends: "
            f"drop the quotes and write {quoted}"
        )
    return f"{{{{ {expr} }}}} is put into the command unquoted: write {quoted} (or | int for a number)"


class _Lines:
    """The runbook file's lines, to point at the line (and column) an expression is on."""

    _BLOCK = lazy_re(r":\s*[|>][-+0-9]*\s*(#.*)?$")

    def __init__(self, path: Path):
        try:
            self.lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            self.lines = []
        self.seen: dict[tuple[int, str], int] = {}

    def _column(self, line: int, needle: str) -> int | None:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        nth = self.seen.get((line, needle), 0)
        col = -1
        for _ in range(nth + 1):
            col = text.find(needle, col + 1)
            if col < 0:
                return None
        self.seen[(line, needle)] = nth + 1
        return col + 1

    def find(self, start: Location, expr: str, offset: int) -> Location:
        """Where ``expr`` (on line ``offset`` of the value whose key is at ``start``) is in the file."""
        line = start.line or 1
        needle = expr.split("\n", 1)[0].strip()
        key_line = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        target = line + (1 if self._BLOCK.search(key_line) else 0) + offset - 1
        col = self._column(target, needle)
        if col is not None:
            return Location(start.file, target, col)
        for i in range(line, min(len(self.lines), target + 20) + 1):  # folded or quoted scalars
            col = self._column(i, needle)
            if col is not None:
                return Location(start.file, i, col)
        return Location(start.file, line)


def _texts(step: Any, kind: kinds.StepKind) -> Iterator[tuple[str, str, Location]]:
    args = kind.normalize(step.args)
    if not isinstance(args, Mapping):
        return
    for name in kind.shell_args:
        value = args.get(name)
        if isinstance(value, str):
            yield name, value, step.arg_locations.get(name, step.location)


def unquoted_shell_vars(rb: Runbook) -> list[ShellVarWarning]:
    """Every variable a runbook puts into shell text where its value could become code."""
    out: list[ShellVarWarning] = []
    lines: _Lines | None = None
    for step in rb.all_steps():
        kind = kinds.get(step.module)
        if kind is None or not kind.shell_args:
            continue
        for arg, text, where in _texts(step, kind):
            for expr, lineno, state in expressions(text):
                why = problem(expr, state)
                if why is None:
                    continue
                lines = lines or _Lines(rb.path)
                shown = step.module if arg == kind.free_form else f"{step.module} {arg}"
                out.append(ShellVarWarning(lines.find(where, expr, lineno), f"{shown}: {why}"))
    return out
