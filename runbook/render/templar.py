"""Jinja2 rendering with StrictUndefined, Ansible's filters, lazy variables and native results.

Variables are resolved lazily, the way Ansible does: a variable whose value is itself a template
is rendered when (and only when) it is used, so ``compose_file: "{{ app_dir }}/x.yml"`` works and an
unused, undefined reference is not an error. A string that is a single ``{{ expr }}`` renders to the
expression's native value (list, dict, int), as in Ansible.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import hashlib
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.lexer import (
    TOKEN_BLOCK_BEGIN,
    TOKEN_BLOCK_END,
    TOKEN_STRING,
    TOKEN_VARIABLE_BEGIN,
    TOKEN_VARIABLE_END,
    Lexer,
)
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import concat

from runbook.errors import Location, RenderError
from runbook.model.inventory_yaml import Unsafe
from runbook.model.lazyre import lazy_re
from runbook.model.values import MAX_INT_DIGITS, NumberTooLarge, huge_int, shown_number
from runbook.render import codecache, lookups
from runbook.render.ansible_filters import ANSIBLE_FILTERS, ANSIBLE_TESTS
from runbook.render.filters import FILTERS, TESTS, FilterError
from runbook.render.secrets import Redactor, collect_secrets, mask_credentials


class _YamlLexer(Lexer):
    """Ansible's reading of templates that come from YAML (ansible-core's AnsibleLexer): the
    backslashes of string constants inside ``{{ }}`` are kept as written (YAML already unescaped
    them), so ``regex_replace('(\\d+)', '\\1')`` in a double-quoted YAML string means what it
    means to Ansible. Statements (``{% %}``), template files and conditions are read as Jinja does."""

    def tokeniter(self, *args: Any, **kwargs: Any) -> Iterator[tuple[int, str, str]]:
        inside, words = False, 0
        for token in super().tokeniter(*args, **kwargs):
            kind = token[1]
            if kind == TOKEN_VARIABLE_BEGIN:
                inside = True
            elif kind == TOKEN_VARIABLE_END:
                inside = False
            elif kind == TOKEN_BLOCK_BEGIN:
                words = 1  # runbook's own `{% set __rb_result = (expr) %}` (a value's expression)
            elif kind == TOKEN_BLOCK_END:
                inside, words = False, 0
            elif words and kind == "name":
                words = 0 if (words == 1 and token[2] != "set") else words + 1
                if words == 3:
                    inside, words = token[2] == "__rb_result", 0
            elif inside and kind == TOKEN_STRING:
                token = (token[0], kind, token[2].replace("\\", "\\\\"))
            yield token


def _env(yaml_values: bool = False) -> jinja2.Environment:
    """Jinja2's sandbox: a template (from a runbook, an inventory, -e, a template file) can read
    variables and call filters, but never reach Python internals (``__class__``, ``__globals__``,
    ``cycler.__init__``, ``self._TemplateReference__context``, ``str.format`` on dunders), so no
    value becomes code on the control machine."""
    env = (_YamlEnv if yaml_values else _Sandbox)(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
    )
    env.code_generator_class = _Codegen
    env.finalize = _finalize
    env.filters.update(FILTERS)
    env.filters.update(ANSIBLE_FILTERS)
    env.tests.update(TESTS)
    env.tests.update(ANSIBLE_TESTS)
    env.globals.update(lookup=lookups.lookup, query=lookups.query, q=lookups.query)
    env.globals["range"] = _bounded_range
    env.globals["now"] = now
    return env


def now(utc: bool = False, fmt: str | None = None) -> datetime.datetime | str:
    """Ansible's ``now()``: the control machine's local time (``utc=true``: UTC), as Ansible a naive
    datetime (so it subtracts from ``to_datetime`` values); a string when ``fmt`` is given."""
    if utc:
        moment = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    else:
        moment = datetime.datetime.now()
    if fmt is not None:
        return moment.strftime(str(fmt))
    return moment


MAX_RANGE = 1_000_000
MAX_POWER_BITS = 100_000  # ``2 ** 10 ** 9`` would take the control machine's CPU and memory for ever
MAX_REPEAT = 10_000_000  # ``'x' * 10 ** 12``: the same, as memory


class _Sandbox(SandboxedEnvironment):
    """The sandbox, also bounding the two operators that turn a short template into an endless
    computation (they are intercepted, so Jinja does not fold them at compile time either)."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        ints = isinstance(left, int) and isinstance(right, int)
        big = ints and right > 0 and abs(left) > 1 and right * abs(left).bit_length() > MAX_POWER_BITS
        if operator == "**" and big:
            raise FilterError(f"{left} ** {right} is too large to compute")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                    raise FilterError(
                        f"repeating a value {n} times is too large (at most {MAX_REPEAT:,} items)"
                    )
        return super().call_binop(context, operator, left, right)


def _bounded_range(*args: int) -> range:
    """Jinja's range(), refusing sizes that would exhaust memory (as Jinja's sandbox does)."""
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise FilterError(f"range() of {len(rng):,} items is too large (at most {MAX_RANGE:,})")
    return rng


class _Taint(threading.local):
    """Per thread: the redactor of the templar rendering now, and whether an output computed from a
    secret was seen since the current variable started rendering."""

    redactor: Redactor | None = None
    seen = False


_TAINT = _Taint()


class _Codegen(CodeGenerator):
    """Jinja's code generator, telling ``finalize`` which variables each ``{{ }}`` reads: the names
    in the expression, and (for names the template binds itself: loop variables, ``set``) every
    name the template reads."""

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        loads = {n.name for n in node.find_all(nodes.Name) if n.ctx == "load"}
        self._rb_all = tuple(sorted(loads))
        self._rb_local = {n.name for n in node.find_all(nodes.Name) if n.ctx in ("store", "param")}
        super().visit_Template(node, frame)

    def _output_child_pre(self, node: nodes.Expr, frame: Any, finalize: Any) -> None:
        super()._output_child_pre(node, frame, finalize)
        names = computed_from(node)
        if names & getattr(self, "_rb_local", set()):
            names |= set(getattr(self, "_rb_all", ()))
        self.write(f"{tuple(sorted(names))!r}, ")


def _access_path(node: nodes.Node) -> bool:
    """``x``, ``x.a``, ``x['a'][0]``: the output is a value as stored (known secrets in it are
    masked as they are), not one computed from the variable."""
    if isinstance(node, nodes.Name):
        return True
    if isinstance(node, nodes.Getattr):
        return _access_path(node.node)
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const) and _access_path(node.node)
    return False


def computed_from(node: nodes.Node) -> set[str]:
    """The variables an expression's value is computed from (none for a plain access path)."""
    if _access_path(node):
        return set()
    return {n.name for n in node.find_all(nodes.Name) if n.ctx == "load"}


@jinja2.pass_context
def _finalize(context: Any, names: tuple[str, ...], value: Any = None) -> Any:
    """Every ``{{ }}`` output computed from a secret (``{{ vault_pw | b64encode }}``) is a secret."""
    if value is None:
        return value
    if names and _reads_secret(getattr(context, "parent", None), names):
        _secret_output(value)
    elif _TAINT.redactor is not None and _TAINT.redactor.holds(value):
        _TAINT.seen = True  # a secret as stored: a variable built around it is a secret
    return value


def _reads_secret(variables: Any, names: Iterable[str]) -> bool:
    lazy = getattr(variables, "_vars", variables)
    if isinstance(lazy, LazyVars):
        return any(lazy.is_secret(n) for n in names)
    redactor = _TAINT.redactor
    return redactor is not None and any(redactor.is_secret_var(n) for n in names)


def _secret_output(value: Any) -> None:
    _TAINT.seen = True
    if _TAINT.redactor is not None:
        _TAINT.redactor.add_value(value)


_names_cache: dict[str, tuple[str, ...]] = {}


def _expression_names(expr: str) -> tuple[str, ...]:
    """The variables a native expression reads."""
    names = _names_cache.get(expr)
    if names is None and _PLAIN_TEMPLATES and re.fullmatch(r"\s*" + _PATH + r"\s*", expr):
        names = ()  # an access path (computed_from): the value as stored
    if names is None:
        try:
            tree = ENV.parse("{{ " + expr + " }}")
            [output] = tree.body
            [value] = output.nodes  # type: ignore[attr-defined]
            names = tuple(sorted(computed_from(value)))
        except (jinja2.TemplateSyntaxError, ValueError):
            names = ()
        if len(_names_cache) < 10000:
            _names_cache[expr] = names
    return names


class _YamlEnv(_Sandbox):
    """The sandbox for values written in YAML (runbook steps and vars, inventories, -e)."""

    @property
    def lexer(self) -> Lexer:  # type: ignore[override]
        lexer = self.__dict__.get("_rb_lexer")
        if lexer is None:
            lexer = self.__dict__["_rb_lexer"] = _YamlLexer(self)
        return lexer


ENV = _env()
YAML_ENV = _env(yaml_values=True)
_cache: dict[tuple[str, bool], jinja2.Template] = {}
_cache_lock = threading.Lock()
_PLAIN_TEMPLATES = True  # build plain templates without Jinja's compiler (_plain_template)


_single_cache: dict[str, str | None] = {}


def single_expression(text: str) -> str | None:
    """The expression of a template that is exactly one ``{{ expr }}`` (surrounding whitespace
    allowed), else None. Uses Jinja's lexer, so ``{{ a | combine({'b': {'c': 1}}) }}`` counts."""
    if text in _single_cache:
        return _single_cache[text]
    expr: str | None = None
    body = text.strip()
    if body.startswith("{{") and body.endswith("}}"):
        try:
            kinds = [tok for _, tok, _ in ENV.lex(body)]
        except jinja2.TemplateSyntaxError:
            kinds = []
        if (
            kinds
            and kinds[0] == "variable_begin"
            and kinds[-1] == "variable_end"
            and kinds.count("variable_begin") == 1
            and not {"block_begin", "comment_begin", "raw_begin", "data"} & set(kinds)
        ):
            expr = body[2:-2]
            if expr[:1] in "-+":
                expr = expr[1:]
            if expr[-1:] in "-+":
                expr = expr[:-1]
    if len(_single_cache) < 10000:
        _single_cache[text] = expr
    return expr


def is_template(value: Any) -> bool:
    """Text to render. Never an ``!unsafe`` value (inventory ``!unsafe`` / ``__ansible_unsafe``, like
    Ansible's): whatever it holds, it is data."""
    return (
        isinstance(value, str)
        and not isinstance(value, Unsafe)
        and ("{{" in value or "{%" in value or "{#" in value)
    )


_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_OUTPUT_PATH = lazy_re(r"\{\{\s*(" + _PATH + r")\s*\}\}")
_SET_PATH = lazy_re(r"\{% set __rb_result = \(\s*(" + _PATH + r")\s*\) %\}")
_TAG_START = lazy_re(r"\{[{%#]")
# names a path must not use: constants, operators and statements, names Jinja binds itself, and
# lookup()/query() (refused as values: runbook.render.lookups.check_lookups)
_NOT_PLAIN = frozenset({
    "true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else",
    "elif", "for", "endfor", "endif", "recursive", "set", "endset", "with", "without", "context",
    "block", "extends", "include", "import", "from", "as", "macro", "call", "filter", "raw", "do",
    "break", "continue", "self", "super", "loop", "caller", "varargs", "kwargs", "ignore", "missing",
    *lookups.LOOKUP_FUNCS,
})  # fmt: skip


def _plain_path(path: str) -> tuple[str, tuple[str, ...]] | None:
    first, *attrs = path.split(".")
    if first in _NOT_PLAIN or any(a in _NOT_PLAIN for a in attrs):
        return None
    return first, tuple(attrs)


def _plain_segments(text: str) -> list[str | tuple[str, tuple[str, ...]]] | None:
    """``text`` as data and ``{{ name.attr }}`` outputs, read as Jinja's lexer reads it, or None
    when it holds anything else (a filter, an operator, a statement, a comment, whitespace control,
    a carriage return, which Jinja would turn into a newline)."""
    if "\r" in text:
        return None
    out: list[str | tuple[str, tuple[str, ...]]] = []
    pos = 0
    while True:
        tag = _TAG_START.search(text, pos)
        if tag is None:
            if pos < len(text):
                out.append(text[pos:])
            return out
        m = _OUTPUT_PATH.match(text, tag.start())
        path = _plain_path(m.group(1)) if m else None
        if m is None or path is None:
            return None
        if tag.start() > pos:
            out.append(text[pos : tag.start()])
        out.append(path)
        pos = m.end()


def _plain_template(text: str, env: jinja2.Environment) -> jinja2.Template | None:
    """The template Jinja would compile for a text made only of data and ``{{ name.attr }}``
    outputs, or for runbook's own ``{% set __rb_result = (name.attr) %}`` (a value's expression),
    built without Jinja's parser, code generator and Python compiler (most of a runbook's
    templates; compiling them was most of a static check's time). Its render function does what
    the generated one does, step for step: every name resolved first, in the order of its first
    use (``context.resolve_or_missing``; a missing one is ``undefined(name=...)``), attributes read
    with the sandbox's ``getattr``, each output finalized (``_finalize``) and made text; the set
    form stores its value in ``context.vars``. Anything else: None (Jinja compiles it)."""
    m = _SET_PATH.fullmatch(text)
    if m is not None:
        path = _plain_path(m.group(1))
        if path is None:
            return None
        first, attrs = path

        def root_set(
            context: Any, missing: Any = jinja2.runtime.missing, environment: Any = env
        ) -> Iterator[str]:
            value = context.resolve_or_missing(first)
            if value is missing:
                value = environment.undefined(name=first)
            for attr in attrs:
                value = environment.getattr(value, attr)
            context.vars["__rb_result"] = value
            yield from ()

        root = root_set
    else:
        segments = _plain_segments(text)
        if segments is None:
            return None
        names = tuple(dict.fromkeys(seg[0] for seg in segments if isinstance(seg, tuple)))

        def root_output(
            context: Any, missing: Any = jinja2.runtime.missing, environment: Any = env
        ) -> Iterator[str]:
            resolved = {name: context.resolve_or_missing(name) for name in names}
            for seg in segments:
                if isinstance(seg, str):
                    yield seg
                    continue
                value = resolved[seg[0]]
                if value is missing:
                    value = environment.undefined(name=seg[0])
                for attr in seg[1]:
                    value = environment.getattr(value, attr)
                yield str(environment.finalize(context, (), value))

        root = root_output
    namespace = {"name": None, "__file__": "<template>", "blocks": {}, "root": root, "debug_info": ""}
    return env.template_class.from_module_dict(env, namespace, env.make_globals(None))


def _may_keep(text: str) -> bool:
    """May a template's compiled code go to the code cache on disk? Not when its text holds a secret
    (a vault value or a declared secret with ``{{ }}`` in it, a credential in a URL or key=value):
    its constants would be written there."""
    redactor = _TAINT.redactor
    return mask_credentials(text) == text and (redactor is None or redactor.redact(text) == text)


def compile_template(text: str, location: Location | None = None, *, yaml_value: bool = False) -> jinja2.Template:
    t = _cache.get((text, yaml_value))
    if t is None:
        env = YAML_ENV if yaml_value else ENV
        t = _plain_template(text, env) if _PLAIN_TEMPLATES else None
        if t is not None:
            with _cache_lock:
                _cache[(text, yaml_value)] = t
            return t
        fingerprint = _fingerprint(env)
        code = codecache.load(fingerprint, text)
        if code is not None:  # compiled by an earlier process: no syntax error and no refusal
            t = env.template_class.from_code(env, code, env.make_globals(None), None)
            with _cache_lock:
                _cache[(text, yaml_value)] = t
            return t
        try:
            if env is ENV and any(f in text for f in lookups.LOOKUP_FUNCS):
                # one parse for the lookup check and the template (checked first: compiling
                # folds constants into the tree); a compile error still comes before a refusal
                tree = ENV.parse(text)
                refused = lookups.check_lookups(tree)
                code = env.compile(tree)
            else:
                code = env.compile(text)
                refused = _lookup_problem(text)
            t = env.template_class.from_code(env, code, env.make_globals(None), None)
        except jinja2.TemplateSyntaxError as exc:
            line = (location.line or 1) + (exc.lineno or 1) - 1 if location else exc.lineno
            loc = Location(location.file, line, location.column) if location else None
            raise RenderError(
                f"template syntax error: {exc.message}", location=loc, hint=_syntax_hint(exc.message or "")
            ) from None
        except (RecursionError, MemoryError):
            raise RenderError(
                "template too complex: its expressions are nested too deeply",
                location=location,
                hint="split the expression into several variables",
            ) from None
        except (ValueError, OverflowError) as exc:  # constants folded while compiling: 10 ** 5000
            why = f"more than {MAX_INT_DIGITS} digits" if "integer string" in str(exc) else str(exc)[:100]
            raise RenderError(f"template error: a number in it is too large ({why})", location=location) from None
        if refused:
            raise RenderError(f"template error: {refused}", location=location)
        if _may_keep(text):
            codecache.store(fingerprint, text, code)
        with _cache_lock:
            _cache[(text, yaml_value)] = t
    return t


def _fingerprint(env: jinja2.Environment) -> bytes:
    """Everything besides a template's source that shapes the code ``env`` compiles for it (the
    key of runbook.render.codecache): the versions of jinja2, runbook and Python, the environment's
    classes and options, its filter, test and extension names, and runbook's own code generator,
    lexer and sandbox (their code, so an edit in a checkout is a new key)."""
    fp = env.__dict__.get("_rb_fingerprint")
    if fp is None:
        version = getattr(sys.modules.get("runbook"), "__version__", "")  # the package: imported first
        parts: list[object] = [
            jinja2.__version__, version, sys.version, sys.implementation.cache_tag,
            [c.__module__ + "." + c.__qualname__ for c in type(env).__mro__],
            [c.__module__ + "." + c.__qualname__ for c in (
                env.code_generator_class, env.context_class, env.template_class, env.undefined)],
            [getattr(env, o) for o in (
                "block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
                "comment_start_string", "comment_end_string", "line_statement_prefix",
                "line_comment_prefix", "trim_blocks", "lstrip_blocks", "newline_sequence",
                "keep_trailing_newline", "optimized", "is_async")],
            repr(env.autoescape), getattr(env.finalize, "__qualname__", repr(env.finalize)),
            repr(getattr(env.finalize, "jinja_pass_arg", None)),
            sorted(env.extensions), sorted(env.filters), sorted(env.tests),
            sorted(getattr(env, "intercepted_binops", ())), sorted(getattr(env, "intercepted_unops", ())),
        ]  # fmt: skip
        h = hashlib.sha256(repr(parts).encode())
        h.update(_own_code())
        for value in vars(type(env)).values():
            code = getattr(getattr(value, "fget", value), "__code__", None)
            if code is not None:
                codecache.feed_code(h, code)
        fp = env.__dict__["_rb_fingerprint"] = h.digest()
    return fp


@functools.cache
def _own_code() -> bytes:
    """The code of this module and of runbook.render.lookups (every function and class method, and
    the lookups allowed): what generates a template's code (the code generator, ``computed_from``)
    and what decides that a compiled template is kept (``compile_template``, ``check_lookups``), so
    a cached template never skips a check an edit added."""
    h = hashlib.sha256(repr((lookups.LOOKUPS, lookups.LOOKUP_FUNCS)).encode())
    for module in (sys.modules[__name__], lookups):
        for value in vars(module).values():
            members = vars(value).values() if isinstance(value, type) else (value,)
            for member in members:
                code = getattr(getattr(member, "fget", member), "__code__", None)
                if code is not None and getattr(member, "__module__", module.__name__) == module.__name__:
                    codecache.feed_code(h, code)
    return h.digest()


def _lookup_problem(text: str) -> str | None:
    """Why a template's lookup()/query() is refused (runbook.render.lookups.check_lookups)."""
    if not any(f in text for f in lookups.LOOKUP_FUNCS):
        return None
    return lookups.check_lookups(ENV.parse(text))


def _syntax_hint(message: str) -> str:
    m = re.match(r"No (filter|test) named '([^']+)'", message)
    if not m:
        return "check the {{ }} / {% %} pairs and the expression inside them"
    known = ENV.filters if m.group(1) == "filter" else ENV.tests
    close = difflib.get_close_matches(m.group(2), list(known), n=1)
    kind = m.group(1)
    return (f"did you mean '{close[0]}'? " if close else "") + (
        f"runbook has Jinja2's built-in {kind}s and Ansible's common ones (default, bool, int, to_json, "
        "from_json, b64encode, regex_replace, basename, dirname, quote, combine, dict2items ...)"
    )


def syntax_check(text: str, location: Location | None = None) -> None:
    if is_template(text):
        compile_template(text, location)


class Literal:
    """A value that is data, not a template (a loop item, a registered result): wherever it sits in
    a layer that templates its values (a step's ``vars:``), LazyVars hands it over as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class LazyVars(Mapping[str, Any]):
    """A read-only variable mapping that renders template values on access (with cycle detection).

    Layers are (mapping, literal) pairs, highest precedence first. Values in a *literal* layer
    (registered results, facts) are returned as they are and never templated again, like Ansible's
    "unsafe" values: command output containing ``{{`` must not be evaluated.
    """

    def __init__(self, layers: list[tuple[Mapping[str, Any], bool]], templar: Templar):
        self._layers = layers
        self._templar = templar
        self._resolving: set[str] = set()
        self._done: dict[str, Any] = {}
        self._secret: set[str] = set()  # keys whose values are secrets (read: taints the output)
        self._partial: dict[str, _Partial] = {}  # mappings being rendered, readable entry by entry
        self._paths: set[tuple[Any, ...]] = set()  # their entries being rendered (cycle detection)

    def is_secret(self, key: str) -> bool:
        """Does this variable hold a secret (by origin, declaration, name, or computed from one)?"""
        if key in self._secret:
            return True
        found = next(((layer, literal) for layer, literal in self._layers if key in layer), None)
        if found is None:
            return False
        if found[1]:  # facts, registered results (plain data; never hostvars' lazy mappings)
            raw = found[0][key]
            redactor = self._templar.redactor
            return redactor.is_secret_var(key) or (isinstance(raw, (str, dict, list)) and redactor.holds(raw))
        if key in self._resolving:
            return False
        try:
            self[key]  # resolving it decides (the expression may not need it: never an error here)
        except Exception:
            return False
        return key in self._secret

    def __getitem__(self, key: str) -> Any:
        if key in self._done:
            return self._done[key]
        for layer, literal in self._layers:
            if key in layer:
                raw, is_literal = layer[key], literal
                break
        else:
            raise KeyError(key)
        redactor = self._templar.redactor
        if is_literal:
            if redactor.is_secret_var(key):
                self._secret.add(key)
            return raw
        if isinstance(raw, Literal):
            return raw.value
        if key in self._resolving:
            if key in self._partial:  # a mapping being rendered: its other entries, one by one
                return self._partial[key]
            raise RenderError(f"variable '{key}' refers to itself (recursive loop)")
        self._resolving.add(key)
        if isinstance(raw, Mapping):  # as Ansible: `app.name` may be read while `app` renders
            self._partial[key] = _Partial(raw, self, (key,))
        outer_seen, _TAINT.seen = _TAINT.seen, False
        try:
            value = self._templar.render(raw, self)
        finally:
            self._resolving.discard(key)
            self._partial.pop(key, None)
            derived, _TAINT.seen = _TAINT.seen, outer_seen
        if derived or (is_template(raw) and redactor.is_secret_var(key)):
            # computed from a secret (db_url: "postgres://app:{{ vault_pw }}@db/app"), or a
            # credential assembled from a template: the whole value is a secret
            redactor.add(collect_secrets({key: value}, force=True))
        if derived or redactor.is_secret_var(key) or redactor.holds(value):
            self._secret.add(key)
        self._done[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return any(key in layer for layer, _ in self._layers)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer, _ in self._layers:
            for k in layer:
                if k not in seen:
                    seen.add(k)
                    yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:  # as len() > 0, without walking every key of every layer
        for layer, _ in self._layers:
            for _key in layer:
                return True
        return False

    def child(self, *layers: tuple[Mapping[str, Any], bool]) -> LazyVars:
        """A view with more layers on top (highest first): step vars, loop item, registered results."""
        return LazyVars([*layers, *self._layers], self._templar)


class _Partial(Mapping[str, Any]):
    """A variable's mapping while it is being rendered: each entry rendered when read, so that one
    entry may use another (``app: {name: demo, dir: "/srv/{{ app.name }}"}``, as Ansible allows);
    an entry that needs itself is still a recursive loop."""

    __slots__ = ("_path", "_raw", "_vars")

    def __init__(self, raw: Mapping[str, Any], variables: LazyVars, path: tuple[Any, ...]):
        self._raw, self._vars, self._path = raw, variables, path

    def __getitem__(self, key: Any) -> Any:
        raw = self._raw[key]
        path = (*self._path, key)
        if isinstance(raw, Mapping):
            return _Partial(raw, self._vars, path)
        if path in self._vars._paths:
            raise RenderError(f"variable '{'.'.join(map(str, path))}' refers to itself (recursive loop)")
        self._vars._paths.add(path)
        try:
            return self._vars._templar.render(raw, self._vars)
        finally:
            self._vars._paths.discard(path)

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __iter__(self) -> Iterator[Any]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class _WithGlobals(Mapping[str, Any]):
    """Variables first, then Jinja's globals (range, dict, namespace, lipsum …): a shared context
    (used so that variables stay lazy) would otherwise see no globals at all."""

    __slots__ = ("_vars",)

    def __init__(self, variables: Mapping[str, Any]):
        self._vars = variables

    def __getitem__(self, key: str) -> Any:
        try:
            return self._vars[key]
        except KeyError:
            return ENV.globals[key]

    def __contains__(self, key: object) -> bool:
        return key in self._vars or key in ENV.globals

    def __iter__(self) -> Iterator[str]:
        yield from self._vars
        yield from (k for k in ENV.globals if k not in self._vars)

    def __len__(self) -> int:
        return len(set(self._vars) | set(ENV.globals))


class Templar:
    """Renders values against variables; registers decrypted vault values as secrets."""

    def __init__(self, redactor: Redactor | None = None):
        self.redactor = redactor or Redactor()

    def render(self, value: Any, variables: Mapping[str, Any], location: Location | None = None) -> Any:
        if isinstance(value, str):
            if not is_template(value):
                return value
            return self.render_str(value, variables, location, native=True, yaml_value=True)
        if isinstance(value, Mapping):
            return {
                self.render(k, variables, location): self.render(v, variables, location)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.render(v, variables, location) for v in value]
        if type(value).__name__ == "VaultValue":
            plain = value.decrypt()
            self.redactor.add([plain])
            _TAINT.seen = True
            return plain
        return value

    def render_str(
        self,
        text: str,
        variables: Mapping[str, Any],
        location: Location | None = None,
        *,
        native: bool = False,
        yaml_value: bool = False,
    ) -> Any:
        """Render ``text``; ``yaml_value``: it was written in YAML (read as Ansible reads those)."""
        expr = single_expression(text) if native else None
        outer = _TAINT.redactor
        _TAINT.redactor = self.redactor
        try:
            if expr is not None:
                result = self._eval(expr, variables, location, yaml_value=yaml_value)
                if _reads_secret(variables, _expression_names(expr)):
                    _secret_output(result)  # {{ vault_pw | b64encode }}: computed from a secret
                elif self.redactor.holds(result):
                    _TAINT.seen = True
                return result
            t = compile_template(text, location, yaml_value=yaml_value)
            ctx = t.new_context(_WithGlobals(variables), shared=True)
            return concat(t.root_render_func(ctx))
        except jinja2.UndefinedError as exc:
            raise RenderError(
                f"undefined variable: {exc.message}",
                location=location,
                hint="define it in the runbook's vars, the inventory (group_vars/host_vars) or with -e name=value",
            ) from None
        except RenderError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template syntax error: {exc.message}", location=location) from None
        except SecurityError as exc:
            raise RenderError(
                f"template error: refused by the sandbox: {exc}",
                location=location,
                hint="templates may read variables and use filters, not Python internals",
            ) from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"template error: {exc}", location=location) from None
        except RecursionError:
            raise RenderError(
                "template error: endless recursion (a macro or variable that calls itself?)",
                location=location,
            ) from None
        except MemoryError:
            raise RenderError(
                "template error: the result is too large to build in memory", location=location
            ) from None
        except TypeError as exc:
            if "no loader" in str(exc):
                raise RenderError(
                    "template error: {% include %}, {% import %} and {% extends %} are not supported",
                    location=location,
                    hint="render each file with its own template step, or use a macro in the same file",
                ) from None
            raise RenderError(f"template error: TypeError: {exc}", location=location) from None
        except FilterError as exc:
            raise RenderError(f"template error: {exc}", location=location) from None
        except OverflowError as exc:  # 10**400 * 1.0, a huge int | float, a float too large for int
            raise RenderError(
                f"template error: a number is too large ({exc})",
                location=location,
                hint="floats hold numbers up to about 1.8e308; keep very large integers as integers",
            ) from None
        except NumberTooLarge as exc:
            raise RenderError(f"template error: {exc}", location=location) from None
        except ValueError as exc:
            if "integer string conversion" not in str(exc):
                raise RenderError(f"template error: ValueError: {exc}", location=location) from None
            raise RenderError(  # Python's limit on int <-> text conversions
                "template error: an integer with more than 4300 digits cannot be converted to or from text",
                location=location,
            ) from None
        except re.error as exc:
            raise RenderError(
                f"template error: invalid regular expression {exc.pattern!r}: {exc}",
                location=location,
                hint="escape regex special characters with \\\\ or use '| regex_escape'",
            ) from None
        except Exception as exc:  # a filter's or a method's own error: bad input, not a bug in runbook
            raise RenderError(f"template error: {type(exc).__name__}: {exc}", location=location) from None
        finally:
            _TAINT.redactor = outer

    def _eval(
        self, expr: str, variables: Mapping[str, Any], location: Location | None, *, yaml_value: bool = False
    ) -> Any:
        t = compile_template("{% set __rb_result = (" + expr + ") %}", location, yaml_value=yaml_value)
        ctx = t.new_context(_WithGlobals(variables), shared=True)
        for _ in t.root_render_func(ctx):
            pass
        result = ctx.vars.get("__rb_result")
        if isinstance(result, jinja2.Undefined):
            result._fail_with_undefined_error()
        big = huge_int(result)
        if big is not None:  # it could be neither stored (state, audit, JSON) nor shown
            raise RenderError(
                f"template error: the result holds {shown_number(big)}, more than the "
                f"{MAX_INT_DIGITS} digits an integer may have",
                location=location,
            )
        return result

    def evaluate(
        self, condition: Any, variables: Mapping[str, Any], location: Location | None = None
    ) -> bool:
        """A `when`/`until`/`failed_when` condition: a bare expression (or a {{ }} string, or a bool)."""
        if isinstance(condition, bool):
            return condition
        if isinstance(condition, (int, float)):
            return bool(condition)
        text = str(condition).strip()
        expr = single_expression(text)
        if expr is None:
            expr = text
        value = self.render_str("{{ " + expr + " }}", variables, location, native=True)
        if isinstance(value, str):
            from runbook.render.filters import to_bool

            try:
                return to_bool(value)
            except FilterError:
                return bool(value)
        return bool(value)
