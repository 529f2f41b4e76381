"""Static checks of a runbook (no host is contacted): schema, module arguments, Jinja2 syntax,
read-only preflight, and undefined variables (StrictUndefined) for every targeted host."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.errors import Location, RenderError, RunbookError, ValidationError
from runbook.kinds import base as kinds
from runbook.kinds.arguments import coerce
from runbook.model import become, connection
from runbook.model.loader import read_text
from runbook.model.runbook import Runbook, errors_of
from runbook.model.step import CONDITION_KEYWORDS, NUMBER_KEYWORDS, TEMPLATED_KEYWORDS
from runbook.model.values import number_problem, port_problem
from runbook.render import templar as tpl
from runbook.render.runtime import RUNTIME, Anything, reading, touched_now, unknowable
from runbook.render.templar import LazyVars, Templar


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
            and not kind.raw_shell  # the author's own command: a probe in preflight (changes: false)
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
        for keyword in CONDITION_KEYWORDS:
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


def _keyword_templates(step: Any) -> Iterator[tuple[str, str]]:
    """The step keywords written as templates (their syntax is checked before any host is)."""
    for keyword in TEMPLATED_KEYWORDS:
        attribute = "loop_label" if keyword == "loop_control" else keyword  # Step keeps only the label
        for text, _ in _strings(getattr(step, attribute, None), None):
            yield keyword, text
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


def runtime_names(rb: Runbook) -> set[str]:
    names = {s.register for s in rb.all_steps() if s.register}
    names |= {s.loop_var for s in rb.all_steps() if s.loop is not None}
    names |= {s.loop_index_var for s in rb.all_steps() if s.loop is not None and s.loop_index_var}
    names |= {"result", "ansible_facts", "ansible_failed_result", "ansible_failed_task"}
    for s in rb.all_steps():
        kind = kinds.get(s.module)
        if kind is not None:
            names |= set(kind.defines(s.args))
    return names


def check_host(
    rb: Runbook, variables: LazyVars, templar: Templar, host: str, project_dir: Path
) -> list[Problem]:
    """Render everything that can be rendered before the run, for one host (StrictUndefined)."""
    problems: list[Problem] = []
    runtime = dict.fromkeys(runtime_names(rb), Anything())
    scope = variables.child((runtime, True))
    for var in connection.VARIABLES["port"]:
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
    problems += _connection_problems(rb, scope, host)
    names = frozenset(runtime)
    for step in rb.all_steps():
        kind = kinds.get(step.module)
        if kind is None:
            continue
        step_scope = variables.child((runtime, True))  # fresh: no value cached from another step
        with reading():
            try:
                _check_step(step, kind, templar, step_scope, host, rb, project_dir)
            except RenderError as exc:
                if unknowable(exc.message, touched_now(), names):
                    continue  # made of a value known at run time: the run decides
                msg = f"step '{step.label}' ({step.key}): {exc.message}"
                problems.append(
                    Problem(RenderError(msg, location=exc.location or step.location, hint=exc.hint), host)
                )
            except ValidationError as exc:
                problems.append(Problem(exc, host))
    return problems


def _may_run(step: Any, templar: Templar, scope: LazyVars) -> bool:
    """False only when a `when` is false before the run (e.g. `foo is defined`); a condition made of
    a value known at run time (a registered result, a set_fact value) may go either way."""
    for cond in step.when:
        with reading():
            try:
                value = templar.evaluate(cond, scope, step.loc("when"))
            except RenderError as exc:
                if unknowable(exc.message, touched_now(), frozenset()):
                    continue
                raise
            if not value and not touched_now():
                return False
    return True


def _check_step(
    step: Any, kind: Any, templar: Templar, scope: LazyVars, host: str, rb: Runbook, project_dir: Path
) -> None:
    if not _may_run(step, templar, scope):
        return  # statically false: its arguments are not rendered
    if step.loop is not None:
        _check_loop(templar.render(step.loop, scope, step.loc("loop")), step)
    _check_numbers(step, templar, scope)
    _check_become(step, templar, scope)
    step_scope = scope.child((dict(step.vars), False)) if step.vars else scope
    args = templar.render(kind.normalize(step.args), step_scope, step.location)
    if kind.checks_for_host:
        kind.check_for_host(args, _host_check(step, templar, step_scope, host, rb, project_dir))


def _connection_problems(rb: Runbook, scope: Any, host: str) -> list[Problem]:
    """Native steps on a host whose ansible_connection runbook has no transport for."""
    from runbook.model.connection import connection_is_native
    from runbook.plan.connections import native_only_steps, refusal

    try:
        conn = scope.get("ansible_connection")
    except RenderError:
        return []
    if conn in (None, "") or isinstance(conn, Anything) or connection_is_native(conn):
        return []
    steps = native_only_steps(rb.all_steps())
    if not steps:
        return []
    msg, hint = refusal(host, str(conn), steps)
    return [Problem(ValidationError(msg, hint=hint), host)]


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
    for key, rule in NUMBER_KEYWORDS.items():
        value = getattr(step, key)
        if not tpl.is_template(value):
            continue
        rendered = templar.render(value, scope, step.loc(key))
        if isinstance(rendered, Anything):
            continue
        problem = number_problem(rendered, **rule)
        if problem:
            raise RenderError(f"{key} {problem}", location=step.loc(key))


def _host_check(
    step: Any, templar: Templar, scope: LazyVars, host: str, rb: Runbook, project_dir: Path
) -> kinds.HostCheck:
    """What a kind's own host checks (kinds.StepKind.check_for_host) see of this host and step."""
    ctx = kinds.StepContext(host=host, vars=scope, project_dir=project_dir, run_id="validate",
                            loader_dirs=(rb.path.parent, rb.path.parent.parent))  # fmt: skip

    def render_file(src: Path) -> Any:
        return templar.render_str(read_text(src, "template"), scope, Location(str(src), 1, 1))

    return kinds.HostCheck(
        module=step.module, location=step.location, arg_locations=step.arg_locations, ctx=ctx,
        render_file=render_file, unknown=lambda value: isinstance(value, Anything) or RUNTIME in str(value),
    )  # fmt: skip


def validation_errors(exc: ValidationError) -> list[Problem]:
    return [Problem(e) for e in errors_of(exc)]


def undo_warnings(rb: Runbook) -> list[str]:
    """Steps whose changes a rollback cannot undo (runbook.kinds.undo): warnings, not errors."""
    from runbook.kinds import undo

    return [f"{undo.describe(step, why)} ({undo.DECLARE_HINT})" for step, why in undo.gaps(rb)]


class HostVarsBefore(Mapping[str, Any]):
    """``hostvars`` before a run: each inventory host's variables (the inventory's, the runbook's),
    with what only the run gives (registered results, set_fact values) known at run time."""

    def __init__(self, inventory: Any, rb: Runbook, extra: Mapping[str, Any]):
        self._inv, self._rb, self._extra = inventory, rb, extra
        self._runtime = dict.fromkeys(runtime_names(rb), Anything())

    def __getitem__(self, host: str) -> Any:
        if host not in getattr(self._inv, "hosts", {}):
            raise KeyError(host)
        magic = {"inventory_hostname": host, "inventory_hostname_short": host.split(".")[0]}
        return {**dict(self._rb.defaults), **self._inv.host_vars(host), **dict(self._rb.vars),
                **self._runtime, **magic, **dict(self._extra)}  # fmt: skip

    def __iter__(self) -> Iterator[str]:
        return iter(getattr(self._inv, "hosts", {}))

    def __len__(self) -> int:
        return len(getattr(self._inv, "hosts", {}))
