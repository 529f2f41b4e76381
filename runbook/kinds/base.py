"""The contract every step kind (module) fulfils.

A step kind is a small class registered under its module name (``check.memory``, ``compose.up``).
It validates its arguments with a JSON Schema, and its ``run`` is a generator that yields actions
(runbook.actions) and returns an Outcome. Mutating kinds yield a Snapshot before they change
anything, and implement ``undo(args, snapshot, ctx)`` the same way.

What the engine, the validator and the rollback need to know of a kind are its traits, on the class
(``mutating``, ``pure``, ``asks_approval``, ``raw_shell``, ``registers``, ``defines``,
``check_for_host``, ``undo`` ...): nothing outside runbook.kinds tests a module name. Kinds are
found through the ``runbook.steps`` entry points (runbook.kinds); docs/step-kinds.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from runbook.actions import Action
from runbook.errors import Location, ValidationError
from runbook.model.values import shown_number

StepGen = Generator[Action, Any, "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """The result of one step on one host (before changed_when/failed_when are applied)."""

    ok: bool
    changed: bool = False
    msg: str = ""
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)  # extra fields for `register`
    skipped: bool = False
    command: str | None = None  # display form of the main command (masked), for output and audit

    @classmethod
    def success(cls, msg: str = "", *, changed: bool = False, **kw: Any) -> Outcome:
        return cls(ok=True, changed=changed, msg=msg, **kw)

    @classmethod
    def failure(cls, msg: str, **kw: Any) -> Outcome:
        return cls(ok=False, msg=msg, **kw)

    def registered(self) -> dict[str, Any]:
        """The value `register:` stores (Ansible-like field names: COMMON_REGISTERS, then the kind's
        own ``registers``)."""
        out: dict[str, Any] = {
            "ok": self.ok,
            "failed": not self.ok,
            "changed": self.changed,
            "skipped": self.skipped,
            "msg": self.msg,
            "rc": self.rc,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_lines": self.stdout.splitlines(),
            "stderr_lines": self.stderr.splitlines(),
        }
        out.update(self.data)
        return out


# What `register:` holds for every kind (Outcome.registered); each kind's ``registers`` adds its own.
COMMON_REGISTERS: dict[str, str] = {
    "ok": "the step succeeded",
    "failed": "the step failed",
    "changed": "the step changed the host",
    "skipped": "the step was skipped (creates/removes, when)",
    "msg": "the step's one-line summary",
    "rc": "exit code of its command (null: none ran)",
    "stdout": "its standard output (stdout_lines: as a list)",
    "stderr": "its standard error (stderr_lines: as a list)",
}


@dataclass
class StepContext:
    """What a step kind may know about where it runs. No I/O handles: only data and pure helpers."""

    host: str
    vars: Mapping[str, Any]  # the rendered variable context for this host (hostvars, vars, register)
    project_dir: Path  # where playbooks/, templates/, migrations/ live
    run_id: str
    dry_run: bool = False
    become: bool = False
    render_str: Callable[[str], str] = lambda s: s  # render Jinja2 text with the host's context
    loader_dirs: tuple[Path, ...] = ()  # where relative template/file sources are looked up
    # records (compose releases) that the rollback of an unfinished run may still need: never pruned
    pinned: Callable[[], frozenset[str]] = frozenset
    holds_secret: Callable[[str], bool] = lambda text: False  # does this text hold a known secret?
    # the run's own variables (the runbook's `vars:` and -e), rendered for this host: what a tool
    # the step hands over to (ansible.playbook) gets as its extra variables
    play_vars: Callable[[], Mapping[str, Any]] = dict

    def find_file(self, name: str, kind: str = "templates") -> Path:
        """Resolve a control-machine source file (template, copy src, migrations dir)."""
        p = Path(name)
        if p.is_absolute():
            return p
        candidates = [d / name for d in self.loader_dirs]
        candidates += [self.project_dir / kind / name, self.project_dir / name]
        for c in candidates:
            if c.exists():
                return c
        return candidates[0]


@dataclass(frozen=True)
class Requirement:
    """Who must approve a step of a kind that ``asks_approval``: ``count`` distinct people, or each
    of ``names`` (then count == len(names))."""

    count: int = 1
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, args: Mapping[str, Any]) -> Requirement:
        """From the step's (schema-checked) ``approvers`` argument: N, or a list of names
        (duplicates by case are one); absent: one person."""
        value = args.get("approvers", 1)
        if isinstance(value, list):
            names: list[str] = []
            for n in value:
                name = str(n).strip()
                if name.casefold() not in {x.casefold() for x in names}:
                    names.append(name)
            return cls(len(names), tuple(names))
        return cls(int(value))


@dataclass(frozen=True)
class HostCheck:
    """What ``StepKind.check_for_host`` may use: where the step is written, the step context of the
    host being checked (``find_file``, ``render_str`` with its variables) and how to render a
    control-machine template file with them."""

    module: str
    location: Location
    arg_locations: Mapping[str, Location]
    ctx: StepContext
    render_file: Callable[[Path], Any]  # render a template file's text (RenderError when it fails)
    unknown: Callable[[Any], bool] = lambda value: False  # a value known only at run time

    def where(self, arg: str) -> Location:
        """The location of one argument (the step's when not known)."""
        return self.arg_locations.get(arg, self.location)


class StepKind:
    """Base class for modules. Subclasses set ``name``, ``schema`` and implement ``run``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    mutating: ClassVar[bool] = False  # read-only kinds run for real in dry-run and in preflight
    schema: ClassVar[dict[str, Any]] = {"type": "object"}  # JSON Schema of the args mapping
    # If the module accepts a bare string (``shell: "echo hi"``), the key it is stored under.
    free_form: ClassVar[str | None] = None
    # Arguments that hold conditions, as `when:` does: bare Jinja expressions (``x.rc == 0``), evaluated
    # to true/false before the step runs (Ansible's assert `that`)
    conditions: ClassVar[tuple[str, ...]] = ()
    # False: what the step registers is known only once it ran (a plan registers "anything")
    result_known_in_plan: ClassVar[bool] = True
    # Arguments that are shell text (or split like it): ``runbook validate`` warns where a variable
    # lands in them unquoted (runbook.kinds.shellvars).
    shell_args: ClassVar[tuple[str, ...]] = ()
    # A mutating kind whose change needs no undo says why (a webhook message cannot be unsent);
    # others without an undo are reported as "cannot be undone" (runbook.kinds.undo)
    no_undo_needed: ClassVar[str] = ""
    # What the kind's `register:` value holds besides COMMON_REGISTERS: field -> what it is. This is
    # the one home of that text: `runbook schema` and `runbook doc` read it from here.
    registers: ClassVar[dict[str, str]] = {}
    # Does the kind reach the host through runbook's own transport (ssh/local)? False for kinds that
    # run through Ansible itself (ansible-runner) or only on the control node: those alone may target
    # a host whose ansible_connection runbook has no transport for (runbook.plan.connections).
    needs_native_transport: ClassVar[bool] = True
    # The kind runs on the control machine and touches no host (set_fact, debug, assert, fail,
    # approve): a dry-run runs it for real, as it would a read-only check.
    pure: ClassVar[bool] = False
    # The engine asks a human before it goes on (approve): the step's run() is not called, the
    # engine's approval gate (runbook.execute.approval) decides the outcome; who must approve is
    # the step's ``approvers`` argument (Requirement.of), and ``prompt`` what is asked.
    asks_approval: ClassVar[bool] = False
    # The kind runs the author's own shell text or argv (shell, command). Such a step's `changes:`
    # keyword is its ``changes`` argument, and in preflight it is a read-only probe by default
    # (``changes: false``), so preflight may run it.
    raw_shell: ClassVar[bool] = False
    # The step holds steps of its own that the engine runs (Ansible's block: block/rescue/always).
    runs_nested_steps: ClassVar[bool] = False
    # The kind changes the host on every run by nature, even when nothing else moved (a fresh database
    # backup per deploy): a compiled playbook tags its steps ``molecule-idempotence-notest``, so
    # Molecule's idempotence check (a second converge must change nothing) leaves them out.
    changes_every_run: ClassVar[bool] = False

    def flushes_handlers(self, args: Any) -> bool:
        """Whether the step, once run, runs the handlers notified so far (meta: flush_handlers)."""
        return False

    def defines(self, args: Any) -> tuple[str, ...]:
        """The variables a step of this kind sets for the steps after it (set_fact's keys), from its
        arguments as written: ``runbook validate`` knows them before the run."""
        return ()

    def check_for_host(self, args: Mapping[str, Any], check: HostCheck) -> None:
        """Static checks of the arguments rendered for one host, beyond the schema (a template's
        source file exists and renders). Raise ValidationError or RenderError; return when fine."""
        return None

    def normalize(self, args: Any) -> dict[str, Any]:
        """Turn the YAML value into the args mapping validated against ``schema``."""
        if self.free_form and isinstance(args, str):
            return {self.free_form: args}
        if self.free_form and isinstance(args, dict) and "_raw_params" in args:  # free form + args:
            return {self.free_form: args["_raw_params"], **{k: v for k, v in args.items() if k != "_raw_params"}}
        if args is None:
            return {}
        return args

    def mutates(self, args: Any) -> bool:
        """Does this step, with these arguments, change the host? (``changes: false`` marks a probe.)"""
        if isinstance(args, dict) and args.get("changes") is False:
            return False
        return self.mutating

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:  # pragma: no cover - abstract
        raise NotImplementedError
        yield  # make it a generator

    def undo(self, args: dict[str, Any], snapshot: Mapping[str, Any], ctx: StepContext) -> StepGen:
        """Undo from a snapshot. Read-only kinds have nothing to undo."""
        return Outcome.success("nothing to undo")
        yield

    @property
    def can_undo(self) -> bool:
        return type(self).undo is not StepKind.undo

    def verify_undo(self, args: dict[str, Any], snapshot: Mapping[str, Any], ctx: StepContext) -> StepGen:
        """After a rollback: is what ``snapshot`` recorded back in place? Fails naming each
        difference (expected vs found); read-only. Kinds that cannot check leave this as it is."""
        return Outcome.success("not checked")
        yield

    @property
    def checks_for_host(self) -> bool:
        return type(self).check_for_host is not StepKind.check_for_host

    @property
    def can_verify_undo(self) -> bool:
        return type(self).verify_undo is not StepKind.verify_undo

    def needed_records(self, snapshot: Mapping[str, Any]) -> list[str]:
        """Records on the host an undo from ``snapshot`` reads back (compose releases): kept while the
        run that took it is unfinished."""
        return []

    def undo_target(self, args: dict[str, Any], snapshot: Mapping[str, Any]) -> str | None:
        """What a snapshot is of (a path, a compose project, a migrations table), so that a rollback
        checks each thing once, against the oldest snapshot of it (what it was before the run).
        None: the snapshot is checked on its own."""
        return None


_REGISTRY: dict[str, type[StepKind]] = {}


def register(cls: type[StepKind]) -> type[StepKind]:
    """Class decorator: make a step kind available under ``cls.name`` (optional for the classes of
    a module named by a ``runbook.steps`` entry point: loading it registers them)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    had = _REGISTRY.get(cls.name)
    if had is not None and _where(had) != _where(cls):
        raise ValidationError(
            f"step kind '{cls.name}' is defined twice: by {_where(had)} and by {_where(cls)}",
            hint="a `runbook.steps` entry point may not redefine a step kind another package provides",
        )
    _REGISTRY[cls.name] = cls
    return cls


def register_once(cls: type[StepKind]) -> None:
    """Register ``cls`` unless it is registered already (a family module using ``@register``)."""
    if _REGISTRY.get(cls.name) is not cls:
        register(cls)


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_ALIASES: dict[str, type[StepKind]] = {}


def register_alias(cls: type[StepKind]) -> type[StepKind]:
    """Make a kind available under another tool's name for it (``ansible.builtin.copy`` for
    ``copy``): found by ``get``, not listed by ``registry`` (runbook's own modules)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _ALIASES[cls.name] = cls
    return cls


def registry() -> dict[str, type[StepKind]]:
    from runbook.kinds import load_all

    load_all()
    return dict(_REGISTRY)


def get(name: str) -> StepKind | None:
    """The step kind for a module name, importing only the family that defines it."""
    from runbook.kinds import load_for

    cls = _REGISTRY.get(name) or _ALIASES.get(name)
    if cls is None:
        load_for(name)
        cls = _REGISTRY.get(name) or _ALIASES.get(name) or registry().get(name)
    if cls is None:  # an installed Ansible module (resolved lazily, by Ansible's plugin loader)
        from runbook.kinds.ansible_module import resolve

        cls = resolve(name)
    return cls() if cls else None


def native_name(name: str, kind: StepKind | None = None) -> str:
    """The runbook module a step name means: ``ansible.builtin.shell`` -> ``shell`` (an Ansible
    name mapped to runbook's own kind: runbook.kinds.ansible_builtin); others are themselves."""
    kind = kind if kind is not None else get(name)
    return str(getattr(kind, "native", "") or name)


class KnownModules:
    """Membership test for module names that imports only the family asked about; iterating
    (for "did you mean" suggestions) imports them all."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and get(name) is not None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(registry()))

    def __len__(self) -> int:
        return len(registry())


_VALIDATORS: dict[int, Any] = {}


def validator_for(schema: dict[str, Any]) -> Any:
    """A compiled JSON Schema validator, built once per schema (building one per call, as
    ``jsonschema.validate`` does, re-checks the schema itself and costs ~15 ms every time)."""
    v = _VALIDATORS.get(id(schema))
    if v is None:
        v = _finite_validator_class()(schema)
        _VALIDATORS[id(schema)] = v
    return v


def usable_number(value: Any) -> bool:
    """A number a step can compute with: finite and within float range (YAML's .inf, 1e400 and
    integers of hundreds of digits are numbers to JSON Schema, and crash ``float()`` or sleeps)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() <= 1023
    return True


@functools.cache
def _finite_validator_class() -> Any:
    """Draft 2020-12, where "number" and "integer" also mean usable_number."""
    import jsonschema
    from jsonschema.exceptions import ValidationError as SchemaError

    base = jsonschema.Draft202012Validator
    check_type = base.VALIDATORS["type"]

    def finite_type(validator: Any, types: Any, instance: Any, schema: Any) -> Any:
        yield from check_type(validator, types, instance, schema)
        names = [types] if isinstance(types, str) else list(types)
        if ("number" in names or "integer" in names) and not usable_number(instance):
            yield SchemaError(f"{shown_number(instance)} is not a finite number (the limit is about 1.8e308)")

    return jsonschema.validators.extend(base, {"type": finite_type})


# keywords that only annotate: they never make a value invalid
_ANNOTATIONS = frozenset(
    {"description", "title", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"}
)
# what decide() understands; a schema with any other keyword is left to jsonschema
_DECIDED = _ANNOTATIONS | {
    "type", "enum", "const", "minLength", "maxLength", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "items", "minItems", "maxItems", "properties",
    "required", "additionalProperties", "oneOf", "anyOf", "allOf", "if", "then", "else",
}  # fmt: skip
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> bool:
    """A value whose ``==`` is the builtin one (str, int, float, bool, None and their plain
    subclasses): comparing it decides as jsonschema's ``equal`` does."""
    return type(value).__eq__ in (
        str.__eq__,
        int.__eq__,
        float.__eq__,
        bool.__eq__,
        object.__eq__,
    ) and isinstance(value, (str, int, float, type(None)))


def _equal(a: Any, b: Any) -> bool | None:
    """jsonschema's equality (``const``, ``enum``) where it is plain: text with anything is ``==``;
    numbers (never booleans) are ``==``; else unknown."""
    if not (_plain(a) and _plain(b)):
        return None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return None


def _all(results: Any) -> bool | None:
    """True if every one is True, False if one is False, else None (unknown)."""
    unknown = False
    for r in results:
        if r is False:
            return False
        if r is None:
            unknown = True
    return None if unknown else True


def _type_ok(names: list[Any], value: Any) -> bool | None:
    ok = False
    for name in names:
        py = _PY_TYPES.get(name) if isinstance(name, str) else None
        if py is None:
            return None
        if isinstance(value, bool) and name != "boolean":
            continue
        if isinstance(value, py):
            ok = True
    if ok:
        return True
    if isinstance(value, float) and "integer" in names:
        return None  # 1.0 is an integer to JSON Schema
    if isinstance(value, (dict, list, str, int, float, type(None))):
        return False
    return None  # a Mapping or sequence of another type, a value known only at run time: ask jsonschema


def decide(schema: Any, value: Any) -> bool | None:
    """A fast, conservative JSON Schema (draft 2020-12, numbers finite) check for what step kinds'
    argument schemas use: True means certainly valid, False certainly invalid, None "ask
    jsonschema" (which it also spares importing). Every keyword is applied only to the types it
    concerns, as JSON Schema does; an unknown keyword, or a value it cannot judge, gives None."""
    if schema is True or schema == {}:
        return True
    if not isinstance(schema, dict) or not schema.keys() <= _DECIDED:
        return None
    if _is_number(value) and not usable_number(value):
        return None  # the finite-number rule: jsonschema words the error
    results: list[bool | None] = []
    if "type" in schema:
        types = schema["type"]
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list) or not names:
            return None
        results.append(_type_ok(names, value))
    if "const" in schema:
        results.append(_equal(value, schema["const"]))
    if "enum" in schema:
        options = schema["enum"]
        if not isinstance(options, list):
            return None
        found = [_equal(value, o) for o in options]
        results.append(True if True in found else (None if None in found else False))
    if isinstance(value, str):
        if "minLength" in schema or "maxLength" in schema:
            lo, hi = schema.get("minLength", 0), schema.get("maxLength")
            if not isinstance(lo, int) or not (hi is None or isinstance(hi, int)):
                return None
            results.append(len(value) >= lo and (hi is None or len(value) <= hi))
        if "pattern" in schema:
            import re

            try:
                results.append(re.search(schema["pattern"], value) is not None)
            except (re.error, TypeError):
                return None
    if _is_number(value):
        for key, holds in (
            ("minimum", lambda v, b: v >= b),
            ("maximum", lambda v, b: v <= b),
            ("exclusiveMinimum", lambda v, b: v > b),
            ("exclusiveMaximum", lambda v, b: v < b),
        ):
            if key in schema:
                bound = schema[key]
                if not _is_number(bound):
                    return None
                results.append(holds(value, bound))
    if isinstance(value, list):
        if "minItems" in schema or "maxItems" in schema:
            lo, hi = schema.get("minItems", 0), schema.get("maxItems")
            if not isinstance(lo, int) or not (hi is None or isinstance(hi, int)):
                return None
            results.append(len(value) >= lo and (hi is None or len(value) <= hi))
        if "items" in schema:
            results.append(_all(decide(schema["items"], v) for v in value))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        required = schema.get("required", [])
        if not isinstance(props, dict) or not isinstance(required, list):
            return None
        results.append(all(r in value for r in required))
        for k, v in value.items():
            if k in props:
                results.append(decide(props[k], v))
            elif extra is not True:
                results.append(False if extra is False else decide(extra, v))
    for keyword in ("oneOf", "anyOf", "allOf"):
        if keyword in schema:
            branches = schema[keyword]
            if not isinstance(branches, list) or not branches:
                return None
            found = [decide(b, value) for b in branches]
            if None in found:
                return None
            count = found.count(True)
            results.append(
                count == 1
                if keyword == "oneOf"
                else count >= 1
                if keyword == "anyOf"
                else count == len(found)
            )
    if "if" in schema:
        condition = decide(schema["if"], value)
        if condition is None:
            return None
        branch = schema.get("then" if condition else "else")
        if branch is not None:
            results.append(decide(branch, value))
    return _all(results)


def plainly_valid(schema: Any, value: Any) -> bool:
    """True means certainly valid (``decide``); False means "ask jsonschema"."""
    return decide(schema, value) is True


def args_plainly_valid(schema: dict[str, Any], args: Any) -> bool:
    """True when a step's arguments are certainly valid against its schema (``decide``)."""
    return isinstance(args, dict) and decide(schema, args) is True


def first_error(schema: dict[str, Any], value: Any) -> Any:
    """The most relevant validation error of ``value`` against ``schema``, or None."""
    if args_plainly_valid(schema, value):
        return None
    from jsonschema.exceptions import best_match

    return best_match(validator_for(schema).iter_errors(value))
