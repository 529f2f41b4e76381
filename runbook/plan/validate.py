"""Static checks of a runbook (no host is contacted): schema, module arguments, Jinja2 syntax,
read-only preflight, and undefined variables (StrictUndefined) for every targeted host."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.errors import Location, RenderError, RunbookError, ValidationError
from runbook.kinds import base as kinds
from runbook.model import become
from runbook.model.loader import read_text
from runbook.model.runbook import Runbook, errors_of, load_runbook
from runbook.model.values import number_problem, port_problem
from runbook.render import templar as tpl
from runbook.render.templar import LazyVars, Templar

READ_ONLY_OK = {"shell", "command"}  # treated as probes in preflight


def module_names() -> kinds.KnownModules:
    """The known module names (families are imported on demand)."""
    return kinds.KnownModules()


def load(path: str | Path) -> Runbook:
    return load_runbook(path, module_names())


class Anything:
    """Stands in for values only known at run time (registered results, loop items)."""

    # what Jinja2's sandbox asks before calling a value (class attributes: never an Anything)
    unsafe_callable = False
    alters_data = False

    def __getattr__(self, name: str) -> Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Anything:
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return True

    def __str__(self) -> str:
        return "<runtime>"

    def __call__(self, *a: Any, **kw: Any) -> Anything:
        return self

    def __contains__(self, item: Any) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __lt__(self, other: object) -> bool:
        return False

    __gt__ = __le__ = __ge__ = __lt__

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0

    def __add__(self, other: Any) -> Any:
        return other if isinstance(other, str) else self

    __radd__ = __add__


@dataclass
class Problem:
    error: RunbookError
    host: str | None = None

    def __str__(self) -> str:
        return f"{self.error}" + (f"\n  (for host {self.host})" if self.host else "")


def _strings(
    value: Any, loc: Location | None, locs: Mapping[str, Location] | None = None
) -> Iterator[tuple[str, Location | None]]:
    if isinstance(value, str):
        yield value, loc
    elif isinstance(value, Mapping):
        for k, v in value.items():
            kl = getattr(value, "key_loc", None)
            sub = kl(k) if kl else (locs or {}).get(str(k), loc)
            yield from _strings(k, sub)
            yield from _strings(v, sub)
    elif isinstance(value, list):
        il = getattr(value, "item_loc", None)
        for i, v in enumerate(value):
            yield from _strings(v, il(i) if il else loc)


def check_static(rb: Runbook) -> list[Problem]:
    """Module arguments, template syntax and read-only preflight (independent of any host)."""
    problems: list[Problem] = []
    for step in rb.all_steps():
        kind = kinds.get(step.module)
        if kind is None:
            problems.append(
                Problem(ValidationError(f"unknown module '{step.module}'", location=step.location))
            )
            continue
        try:
            args = kind.normalize(step.args)
        except RunbookError as exc:  # an Ansible argument runbook's mapping does not take
            problems.append(Problem(ValidationError(exc.message, location=step.location, hint=exc.hint)))
            continue
        if (
            step.top_phase == "preflight"
            and ".undo" not in step.phase  # its fallback steps must be read-only too
            and kind.mutates(args)
            and kinds.native_name(step.module, kind) not in READ_ONLY_OK
        ):
            problems.append(Problem(ValidationError(
                f"preflight must be read-only, but '{step.module}' changes things",
                location=step.location, hint="move this step to 'steps:'",
            )))  # fmt: skip
        if not isinstance(args, Mapping):
            problems.append(
                Problem(
                    ValidationError(f"{step.module}: arguments must be a mapping", location=step.location)
                )
            )
            continue
        schema = kind.schema
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False and props:
            for key in args:
                if key not in props:
                    close = difflib.get_close_matches(str(key), list(props), n=1)
                    hint = (
                        f"did you mean '{close[0]}'? " if close else ""
                    ) + f"{step.module} accepts: {', '.join(props)}"
                    problems.append(
                        Problem(
                            ValidationError(
                                f"{step.module}: unknown argument '{key}'",
                                location=step.arg_locations.get(str(key), step.location),
                                hint=hint,
                            )
                        )
                    )
        for req in schema.get("required", []):
            if req not in args:
                problems.append(
                    Problem(
                        ValidationError(
                            f"{step.module}: missing required argument '{req}'",
                            location=step.location,
                            hint=f"add '{req}:' under '{step.module}:'",
                        )
                    )
                )
        problems += _alternatives(step, kind.schema, args)
        problems += _literal_types(step, kind.schema, args)
        for text, loc in _strings(step.args, step.location, step.arg_locations):
            try:
                tpl.syntax_check(text, loc)
            except RenderError as exc:
                problems.append(Problem(exc))
        for keyword, value in _keyword_templates(step):
            try:
                tpl.syntax_check(value, step.loc(keyword))
            except RenderError as exc:
                problems.append(
                    Problem(RenderError(f"{keyword}: {exc.message}", location=exc.location, hint=exc.hint))
                )
        for keyword in ("when", "until", "failed_when", "changed_when"):
            for cond in getattr(step, keyword) or ():
                if not isinstance(cond, str):
                    continue
                try:
                    if tpl.is_template(cond):
                        tpl.syntax_check(cond, step.loc(keyword))
                    else:
                        tpl.compile_template("{{ " + cond + " }}", step.loc(keyword))
                except RenderError as exc:
                    problems.append(
                        Problem(
                            RenderError(f"{keyword}: {exc.message}", location=exc.location, hint=exc.hint)
                        )
                    )
    for text, loc in [*_strings(rb.vars, rb.location), *_strings(rb.defaults, rb.location)]:
        try:
            tpl.syntax_check(text, loc)
        except RenderError as exc:
            problems.append(Problem(exc))
    return problems


_TEMPLATED_KEYWORDS = (
    "name", "loop", "retries", "delay", "backoff", "timeout", "become", "become_user", "become_method",
    "become_flags", "no_log",
    "ignore_errors", "run_once", "changes", "delegate_to", "loop_label",
)  # fmt: skip


def _keyword_templates(step: Any) -> Iterator[tuple[str, str]]:
    """The step keywords written as templates (their syntax is checked before any host is)."""
    for keyword in _TEMPLATED_KEYWORDS:
        for text, _ in _strings(getattr(step, keyword, None), None):
            yield keyword.replace("loop_label", "loop_control"), text
    for text, _ in _strings(dict(step.vars), None):
        yield "vars", text


def _alternatives(step: Any, schema: Mapping[str, Any], args: Mapping[str, Any]) -> list[Problem]:
    """A module's "one of these arguments" rules (cmd or argv; src or content), which only ask
    which arguments are given, so they can be checked before anything is rendered."""
    out: list[Problem] = []
    for combinator, word in (("oneOf", "exactly one"), ("anyOf", "at least one")):
        branches = schema.get(combinator)
        if not isinstance(branches, list) or not all(
            isinstance(b, Mapping) and set(b) == {"required"} for b in branches
        ):
            continue
        matched = [b for b in branches if all(k in args for k in b["required"])]
        if (combinator == "oneOf" and len(matched) == 1) or (combinator == "anyOf" and matched):
            continue
        options = " or ".join("+".join(b["required"]) for b in branches)
        given = "both" if len(matched) > 1 else "none"
        out.append(Problem(ValidationError(
            f"{step.module}: needs {word} of {options} (given: {given})",
            location=step.location,
            hint=f"see `runbook schema` for {step.module}'s arguments",
        )))  # fmt: skip
    return out


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return tpl.is_template(value)
    if isinstance(value, Mapping):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def _literal_types(step: Any, schema: Mapping[str, Any], args: Mapping[str, Any]) -> list[Problem]:
    """Type errors in module arguments written literally (templates are checked per host at run
    time): ``dest: [1]``, ``port: abc``. Unknown/missing arguments are reported separately."""
    out: list[Problem] = []
    props = schema.get("properties") or {}
    for key, value in args.items():
        sub = props.get(key)
        if not isinstance(sub, Mapping) or _has_template(value):
            continue
        value = coerce(value, sub)
        if kinds.plainly_valid(sub, value):
            continue
        for err in kinds.validator_for(sub).iter_errors(value):
            where = ".".join([str(key), *(str(p) for p in err.absolute_path)])
            out.append(Problem(ValidationError(
                f"{step.module}: invalid argument {where}: {err.message}",
                location=step.arg_locations.get(str(key), step.location),
                hint=str(sub.get("description") or "see `runbook schema` for the arguments"),
            )))  # fmt: skip
            break
    return out


def _types(schema: Mapping[str, Any]) -> set[str]:
    t = schema.get("type")
    return {t} if isinstance(t, str) else set(t or ())


def coerce(value: Any, schema: Any) -> Any:
    """Convert rendered text to the type the module's schema asks for, as Ansible's argument spec
    does: ``port: "{{ port }}"`` with ``-e port=8080`` (a string) becomes the integer 8080."""
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: coerce(v, props.get(k)) for k, v in value.items()} if props else value
    if isinstance(value, list):
        items = schema.get("items")
        return [coerce(v, items) for v in value] if isinstance(items, Mapping) else value
    types = _types(schema)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # `content: "{{ port }}"` renders to a number; a string-only argument gets its text
        return str(value) if "string" in types and not types & {"integer", "number"} else value
    if not isinstance(value, str) or not types or "string" in types:
        return value
    text = value.strip()
    if types & {"integer", "number"} and re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    if "boolean" in types and text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    if "null" in types and text.lower() in ("", "none", "null"):
        return None
    return value


_BOOLS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def runtime_names(rb: Runbook) -> set[str]:
    names = {s.register for s in rb.all_steps() if s.register}
    names |= {s.loop_var for s in rb.all_steps() if s.loop is not None}
    names |= {"result", "ansible_facts", "ansible_failed_result", "ansible_failed_task"}
    for s in rb.all_steps():
        if s.module == "set_fact" and isinstance(s.args, Mapping):
            names |= {str(k) for k in s.args}
    return names


def check_host(
    rb: Runbook, variables: LazyVars, templar: Templar, host: str, project_dir: Path
) -> list[Problem]:
    """Render everything that can be rendered before the run, for one host (StrictUndefined)."""
    problems: list[Problem] = []
    runtime = dict.fromkeys(runtime_names(rb), Anything())
    scope = variables.child((runtime, True))
    for var in ("ansible_port", "ansible_ssh_port"):
        try:
            port = scope.get(var)
        except RenderError as exc:
            problems.append(Problem(exc, host))
            continue
        problem = port_problem(port) if port not in (None, "") and not isinstance(port, Anything) else None
        if problem:
            problems.append(Problem(ValidationError(
                f"host {host}: {var} {problem}", hint=f"fix {var} for this host in the inventory",
            ), host))  # fmt: skip
    for step in rb.all_steps():
        kind = kinds.get(step.module)
        if kind is None:
            continue
        try:
            if not all(templar.evaluate(cond, scope, step.loc("when")) for cond in step.when):
                continue  # statically false (e.g. `foo is defined`): its arguments are not rendered
            if step.loop is not None:
                _check_loop(templar.render(step.loop, scope, step.loc("loop")), step)
            _check_numbers(step, templar, scope)
            _check_become(step, templar, scope)
            step_scope = scope.child((dict(step.vars), False)) if step.vars else scope
            args = templar.render(kind.normalize(step.args), step_scope, step.location)
            if kinds.native_name(step.module, kind) in ("template", "copy") and isinstance(args, Mapping) and args.get("src"):
                _check_source(step, args, templar, step_scope, host, rb, project_dir)
        except RenderError as exc:
            msg = f"step '{step.label}' ({step.key}): {exc.message}"
            problems.append(
                Problem(RenderError(msg, location=exc.location or step.location, hint=exc.hint), host)
            )
        except ValidationError as exc:
            problems.append(Problem(exc, host))
    return problems


def _check_loop(items: Any, step: Any) -> None:
    if isinstance(items, Anything) or (
        hasattr(items, "__iter__") and not isinstance(items, (str, bytes, Mapping))
    ):
        return
    kind = "a mapping" if isinstance(items, Mapping) else f"{type(items).__name__} {items!r}"[:80]
    raise RenderError(
        f"loop must give a list, got {kind}",
        location=step.loc("loop"),
        hint="use '| dict2items' for a mapping" if isinstance(items, Mapping) else "e.g. loop: [a, b]",
    )


def _check_become(step: Any, templar: Templar, scope: Mapping[str, Any]) -> None:
    """A step that becomes another user does so through a method the transports implement, whether
    the runbook (a template) or the host's ansible_become_method variable names it."""
    asked = step.become if step.become is not None else become.pick(scope, "become")
    if isinstance(asked, str) and tpl.is_template(asked):
        asked = templar.render(asked, scope, step.loc("become"))
    if isinstance(asked, Anything) or not asked or str(asked).strip().lower() in ("false", "no", "0", "off"):
        return
    for key, what, check in (
        ("become_method", "method", become.method_problem),
        ("become_flags", "flags", become.flags_problem),
        ("become_user", "user", become.user_problem),
    ):
        value = getattr(step, key)
        if value is None:  # the host's variable says (the inventory, -e, vars)
            value = become.pick(scope, what)
            if value is not None and not isinstance(value, Anything) and check(value):
                raise RenderError(
                    f"{check(value)}: the host's ansible_{key} says so",
                    location=step.location,
                    hint=f"fix ansible_{key} in the inventory, or set {key} on the step",
                )
            continue
        if tpl.is_template(value):
            value = templar.render(value, scope, step.loc(key))
        if not isinstance(value, Anything) and check(value):
            raise RenderError(str(check(value)), location=step.loc(key))


def _check_numbers(step: Any, templar: Templar, scope: Mapping[str, Any]) -> None:
    """retries, delay, backoff and timeout written as templates must render to usable numbers."""
    for key in ("retries", "delay", "backoff", "timeout"):
        value = getattr(step, key)
        if not tpl.is_template(value):
            continue
        rendered = templar.render(value, scope, step.loc(key))
        if isinstance(rendered, Anything):
            continue
        problem = number_problem(rendered, integer=key == "retries", positive=key == "timeout")
        if problem:
            raise RenderError(f"{key} {problem}", location=step.loc(key))


def _check_source(
    step: Any,
    args: Mapping[str, Any],
    templar: Templar,
    scope: LazyVars,
    host: str,
    rb: Runbook,
    project_dir: Path,
) -> None:
    """A template's or copy's source file exists on this machine (and a template renders)."""
    name = str(args["src"])
    if "<runtime>" in name:  # made of a registered result: known only during the run
        return
    is_template = kinds.native_name(step.module) == "template"
    folder = "templates" if is_template else "files"
    ctx = kinds.StepContext(host=host, vars=scope, project_dir=project_dir, run_id="validate",
                            loader_dirs=(rb.path.parent, rb.path.parent.parent))  # fmt: skip
    src = ctx.find_file(name, folder)
    where = step.arg_locations.get("src", step.location)
    if not src.exists():
        raise ValidationError(
            f"{step.module} source not found: {name}",
            location=where,
            hint=f"looked in {project_dir / folder} and next to the runbook",
        )
    if not is_template:
        return
    try:
        text = read_text(src, "template")
    except ValidationError as exc:
        raise ValidationError(exc.message, location=exc.location or where, hint=exc.hint) from None
    try:
        templar.render_str(text, scope, Location(str(src), 1, 1))
    except RenderError as exc:
        raise RenderError(
            f"in template {src.name}: {exc.message}", location=exc.location or step.location, hint=exc.hint
        ) from None


def validation_errors(exc: ValidationError) -> list[Problem]:
    return [Problem(e) for e in errors_of(exc)]


def undo_warnings(rb: Runbook) -> list[str]:
    """Steps whose changes a rollback cannot undo (runbook.kinds.undo): warnings, not errors."""
    from runbook.kinds import undo

    return [f"{undo.describe(step, why)} ({undo.DECLARE_HINT})" for step, why in undo.gaps(rb)]
