"""One step of a runbook: its keywords, the frozen Step object, and the parser that builds it from YAML
(collecting every error with its file:line:column rather than stopping at the first)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runbook.errors import Location, ValidationError
from runbook.model import become
from runbook.model.ansible_tasks import STEP_REFUSED
from runbook.model.loader import YDict, YList
from runbook.model.values import (
    BOOL_WORDS,
    duration,
    is_template,
    is_variable_name,
    number_problem,
    plain,
    suggest,
)

STEP_KEYWORDS = {
    "name": "a human-readable label for the step (Jinja2 is rendered, like Ansible's task names)",
    "when": "condition(s) (Jinja2 expressions, without braces) that must all be true to run",
    "register": "variable name to store the step's result in",
    "loop": "a list to run the step once per item (as `item`)",
    "loop_control": "{loop_var, label, index_var, pause (seconds between items)}",
    "retries": "how many times to retry a failed step",
    "delay": "seconds to wait before the first retry",
    "backoff": "multiply the delay by this after each retry",
    "until": "condition(s) that must hold for the step to succeed (retried until true)",
    "timeout": "seconds after which the step is stopped and fails",
    "tags": "labels for --tags / --skip-tags",
    "become": "run with privilege escalation (as become_user, through become_method)",
    "become_user": "user to become (default root)",
    "become_method": "how to become it: sudo (default) or su",
    "become_flags": "extra options for sudo/su (shell words, e.g. '-H' or '-l')",
    "no_log": "hide this step's command, output and result everywhere",
    "changed_when": "condition deciding whether the step changed something",
    "failed_when": "condition deciding whether the step failed",
    "ignore_errors": "carry on when the step fails",
    "delegate_to": "run the step on another inventory host (e.g. localhost)",
    "run_once": "run on the first host of the batch only, share the result",
    "undo": "a step (module: args) that undoes this one during rollback (wins over the module's own undo); "
    "`undo: none` or `undo: {none: REASON}` declares that the step needs no undo",
    "fallback": "steps run when this step fails (like Ansible's rescue); if they all succeed the step "
    "counts as recovered",
    "vars": "variables for this step only",
    "changes": "false marks a shell/command step as a read-only probe",
    "notify": "handler name(s) to run once the phase ends (or at meta: flush_handlers) if this step "
    "changed something; also after a rollback undid this step's change",
    "listen": "(a handler) topic(s) it also answers to in notify:",
    "environment": "environment variables for the step's command (shell/command: merged into env:)",
    "budget": "(a block) the time its steps may take together: a duration (90, \"5m\", \"1h30m\") or "
    "{time: 5m, on_exceed: warn | fail}; warn (the default) says so in the log and the audit, fail "
    "fails the block (its rescue runs, else the rollback) and starts none of its steps once spent",
    "check_mode": "true: only plan this step (never change anything); false: run it in plan/--dry-run "
    "too (only for read-only shell/command probes)",
}
# Ansible's block: `block:` steps, `rescue:` steps run when one of them failed, `always:` steps run
# whatever happened (runbook.execute.blocks). Their keywords apply to every step inside.
BLOCK_KEYS = ("block", "rescue", "always")
# A block's keywords that its steps inherit (as Ansible's block keywords are).
INHERITED = ("when", "tags", "become", "become_user", "become_method", "become_flags", "vars", "no_log",
             "ignore_errors", "environment", "check_mode", "delegate_to", "timeout")  # fmt: skip

# The keywords that hold a count or a duration, and the number rule each follows (`number_problem`):
# checked when the runbook is read, when a template is rendered for validation, and at run time.
NUMBER_KEYWORDS: Mapping[str, Mapping[str, bool]] = {
    "retries": {"integer": True},
    "delay": {},
    "backoff": {},
    "timeout": {"positive": True},
}
# The keywords that hold conditions (Jinja2 expressions without braces, one or a list).
CONDITION_KEYWORDS = ("when", "until", "failed_when", "changed_when")
# The keywords whose value may be a template (their syntax is checked before any host is).
TEMPLATED_KEYWORDS = (
    "name", "loop", *NUMBER_KEYWORDS, "become", "become_user", "become_method", "become_flags", "no_log",
    "ignore_errors", "run_once", "changes", "delegate_to", "loop_control",
)  # fmt: skip

_TYPE_NAMES: dict[type, str] = {
    int: "an integer",
    float: "a number",
    str: "a string (or a {{ template }})",
    bool: "true/false",
    dict: "a mapping",
    list: "a list",
    YDict: "a mapping",
    YList: "a list",
}


@dataclass(frozen=True)
class Step:
    module: str
    args: Any
    location: Location
    phase: str  # "steps"; a nested step's phase names its parent: "steps[2].fallback", "steps[2].undo"
    index: int  # position in its list
    name: str = ""
    when: tuple[Any, ...] = ()
    register: str | None = None
    loop: Any = None
    loop_var: str = "item"
    loop_label: str | None = None
    loop_index_var: str | None = None
    loop_pause: float | str = 0.0  # seconds, or a template rendered per loop
    retries: int | None = None
    delay: float = 1.0
    backoff: float = 1.0
    until: tuple[Any, ...] = ()
    timeout: float | None = None
    tags: tuple[str, ...] = ()
    become: bool | None = None
    become_user: str | None = None
    become_method: str | None = None
    become_flags: str | None = None
    no_log: bool = False
    changed_when: tuple[Any, ...] | None = None
    failed_when: tuple[Any, ...] | None = None
    ignore_errors: bool = False
    delegate_to: str | None = None
    run_once: bool = False
    undo: Step | None = None
    undo_none: str | None = None  # `undo: none` / `undo: {none: REASON}`: needs no undo (the reason)
    fallback: tuple[Step, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    changes: bool | None = None
    notify: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    environment: Any = None
    check_mode: bool | None = None
    budget: tuple[float, str] | None = None  # (seconds, "warn" | "fail"): a block's time budget
    block: tuple[Step, ...] = ()
    rescue: tuple[Step, ...] = ()
    always: tuple[Step, ...] = ()
    arg_locations: Mapping[str, Location] = field(default_factory=dict)
    keyword_locations: Mapping[str, Location] = field(default_factory=dict)

    def loc(self, keyword: str) -> Location:
        """Where a step keyword (when, until, loop ...) is written, else the step itself."""
        return self.keyword_locations.get(keyword) or self.location

    @property
    def label(self) -> str:
        return self.name or f"{self.module}"

    @property
    def key(self) -> str:
        """Stable identifier within the runbook: phase and position (``steps[2].fallback[0]``)."""
        return f"{self.phase}[{self.index}]"

    @property
    def top_phase(self) -> str:
        """The runbook phase the step belongs to (preflight, steps, rollback, always)."""
        return self.phase.split("[", 1)[0]

    @property
    def top_index(self) -> int:
        """The position of the top-level step this one is (or is nested in)."""
        if "[" not in self.phase:
            return self.index
        return int(self.phase.split("[", 1)[1].split("]", 1)[0])

    def nested(self) -> Iterator[Step]:
        """This step's undo, fallback and block steps, recursively (not the step itself)."""
        undo = (self.undo,) if self.undo is not None else ()
        for sub in (*undo, *self.fallback, *self.block, *self.rescue, *self.always):
            yield sub
            yield from sub.nested()


class StepParser:
    """Parsing helpers bound to one file, collecting all errors rather than stopping at the first."""

    def __init__(self, file: str, modules: Collection[str] | None):
        self.file = file
        self.modules = modules
        self.errors: list[ValidationError] = []

    def err(self, msg: str, loc: Location | None, hint: str | None = None) -> None:
        self.errors.append(ValidationError(msg, location=loc or Location(self.file), hint=hint))

    def typed(self, value: Any, types: tuple[type, ...], what: str, loc: Location | None) -> bool:
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            got = _TYPE_NAMES.get(type(value), type(value).__name__)
            if isinstance(value, dict):
                got = "a mapping"
            elif isinstance(value, list):
                got = "a list"
            self.err(f"{what} must be {names}, got {got}: {plain(value)!r}"[:300], loc)
        return ok

    def _number(
        self, key: str, value: Any, kloc: Any, *, integer: bool = False, positive: bool = False
    ) -> bool:
        problem = number_problem(value, integer=integer, positive=positive)
        if problem:
            self.err(f"{key} {problem}", kloc(key))
        return problem is None

    def become(self, keywords: Mapping[str, Any], kloc: Any) -> None:
        """A become_method the transports implement, become_flags that split into words (templates
        are checked once rendered)."""
        method, flags = keywords.get("become_method"), keywords.get("become_flags")
        user = keywords.get("become_user")
        if isinstance(user, str) and not is_template(user) and become.user_problem(user):
            self.err(str(become.user_problem(user)), kloc("become_user"), hint="e.g. become_user: postgres")
        if method is not None and not is_template(method):
            problem = become.method_problem(method)
            if problem:
                sug = suggest(str(method), become.METHODS)
                hint = (sug + " " if sug else "") + "use become_method: sudo or su"
                self.err(problem, kloc("become_method"), hint=hint)
        if flags is not None and not is_template(flags):
            problem = become.flags_problem(flags)
            if problem:
                self.err(problem, kloc("become_flags"), hint="balance the quotes in become_flags")

    def var_names(self, variables: Mapping[Any, Any], what: str, loc: Location | None) -> None:
        """Every variable name is one a template can use (as Ansible requires)."""
        for name in variables:
            if not is_variable_name(name):
                where = variables.key_loc(name) if isinstance(variables, YDict) else loc
                self.err(
                    f"{what}: {name!r} is not a valid variable name",
                    where,
                    hint="use letters, digits and _ (not starting with a digit, not a keyword like 'for')",
                )

    def conditions(self, value: Any, what: str, loc: Location | None) -> tuple[Any, ...]:
        if value is None:
            return ()
        if isinstance(value, list):
            for i, cond in enumerate(value):
                if not isinstance(cond, (str, bool, int, float)):
                    where = value.item_loc(i) if isinstance(value, YList) else loc
                    self.err(
                        f"{what} item {i + 1} must be an expression, got {plain(cond)!r}"[:200],
                        where,
                        hint="quote an expression that contains ': ' (e.g. when: \"x == 'a: b'\")",
                    )
            return tuple(c for c in value if isinstance(c, (str, bool, int, float)))
        if isinstance(value, (str, bool, int, float)):
            return (value,)
        self.err(
            f"{what} must be an expression or a list of expressions, got {plain(value)!r}"[:200],
            loc,
            hint="a YAML mapping here usually means an unquoted ': ' inside the expression; quote it",
        )
        return ()

    def _module(self, raw: dict, phase: str, index: int, sloc: Location, kloc: Any) -> str | None:
        """The step's one module key, or None (with the error recorded)."""
        if "block" in raw:
            return "block"
        for k in raw:
            if k in STEP_REFUSED:
                self.err(f"'{k}' is not supported", kloc(k), hint=STEP_REFUSED[k])
                return None
            if k in ("rescue", "always"):
                self.err(f"'{k}' belongs to a block", kloc(k), hint=f"write block: (the steps) above {k}:")
                return None
        module_keys = [k for k in raw if k not in STEP_KEYWORDS]
        if not module_keys:
            self.err(
                f"{phase} item {index + 1} names no module",
                sloc,
                hint="add one module key such as 'shell:', 'template:' or 'check.disk:' (see `runbook schema`)",
            )
            return None
        if len(module_keys) > 1:
            known = [k for k in module_keys if self.modules is None or k in self.modules]
            if len(known) == 1:  # one module plus misspelt keywords
                for k in module_keys:
                    if k not in known:
                        sug = suggest(str(k), STEP_KEYWORDS)
                        self.err(
                            f"unknown step keyword '{k}' (the step's module is '{known[0]}')",
                            kloc(k),
                            hint=(sug + " " if sug else "") + f"step keywords: {', '.join(STEP_KEYWORDS)}",
                        )
                return None
            names = ", ".join(map(str, module_keys))
            if known:
                hint = "a step runs exactly one module; split it into one step per module"
            else:
                sugs = [
                    f"'{k}': {suggest(str(k), [*(self.modules or ()), *STEP_KEYWORDS]) or 'unknown'}"
                    for k in module_keys
                ]
                hint = "none of these is a known module or step keyword; " + "; ".join(sugs)
            self.err(
                f"{phase} item {index + 1} has several module keys: {names}",
                kloc(module_keys[1]),
                hint=hint,
            )
            return None
        module = str(module_keys[0])
        if self.modules is not None and module not in self.modules:
            sug = suggest(module, list(self.modules) + list(STEP_KEYWORDS))
            self.err(
                f"unknown module '{module}'",
                kloc(module),
                hint=(sug + " " if sug else "") + "run `runbook schema` for the list of modules",
            )
            return None
        return module

    def step(self, raw: Any, phase: str, index: int, loc: Location | None, defaults: dict) -> Step | None:
        if phase.endswith(".undo") and not isinstance(raw, dict):
            self.err(
                f"undo must be one step (module: args), got {plain(raw)!r}"[:200],
                loc,
                hint="e.g. 'undo: {shell: systemctl restart app}', or 'undo: none' when it needs none",
            )
            return None
        if isinstance(raw, str):
            self.err(
                f"{phase} item {index + 1} is a string, expected a mapping like '- shell: {raw}'",
                loc,
                hint="each step is a mapping with one module key, e.g. '- shell: echo hi'",
            )
            return None
        if not isinstance(raw, dict):
            self.err(f"{phase} item {index + 1} must be a mapping (module: args)", loc)
            return None
        kloc = raw.key_loc if isinstance(raw, YDict) else (lambda k: loc)
        sloc = raw.loc if isinstance(raw, YDict) and raw.loc else loc or Location(self.file)
        module = self._module(raw, phase, index, sloc, kloc)
        if module is None:
            return None
        name = raw.get("name", "")
        if isinstance(name, (dict, list)):
            self.err(
                f"name must be a string, got {'a mapping' if isinstance(name, dict) else 'a list'}",
                kloc("name"),
                hint="quote the name if it contains ': ' or starts with '[' or '{'",
            )
            name = ""
        elif name is not None and not isinstance(name, str):
            name = str(name)
        kw = self._keywords(raw, kloc, defaults)
        declared = self._undo_none(raw.get("undo"), kloc("undo"))
        if declared is not None:
            kw["undo_none"] = declared
        elif "undo" in raw and raw["undo"] is not None:
            undo = self.step(raw["undo"], f"{phase}[{index}].undo", 0, kloc("undo"), {})
            if undo is not None and not undo.name:  # shown as "undo: <step>", not as its module
                undo = replace(undo, name=f"undo: {name or module}")
            kw["undo"] = undo
        if "fallback" in raw and raw["fallback"] is not None:
            if isinstance(raw["fallback"], list) and raw["fallback"]:
                kw["fallback"] = self.steps(
                    raw["fallback"], f"{phase}[{index}].fallback", kloc("fallback"), defaults
                )
            else:
                self.err(
                    "fallback must be a non-empty list of steps",
                    kloc("fallback"),
                    hint="write 'fallback:' then '- module: args' items, run when this step fails",
                )
        if isinstance(raw, YDict):
            kw["keyword_locations"] = {str(k): raw.key_loc(k) for k in raw if k in STEP_KEYWORDS}
        if "block" in raw:  # Ansible's block: syntax, not a module (see _module)
            return self._block(raw, phase, index, kloc, sloc, name, kw, defaults)
        args = raw[module]
        arg_locs = {}
        if isinstance(args, YDict):
            arg_locs = {str(k): args.key_loc(k) for k in args}
        return Step(
            module=module,
            args=args,
            location=kloc(module) or sloc,
            phase=phase,
            index=index,
            name=name or "",
            arg_locations=arg_locs,
            **kw,
        )

    def _budget(self, value: Any, loc: Any) -> tuple[float, str] | None:
        """``budget: 5m`` / ``budget: {time: 5m, on_exceed: fail}`` -> (seconds, action)."""
        action = "warn"
        if isinstance(value, dict):
            unknown = sorted(set(map(str, value)) - {"time", "on_exceed"})
            if unknown:
                self.err(f"unknown budget key '{unknown[0]}'", loc, hint="budget: {time: 5m, on_exceed: warn | fail}")
                return None
            action, value = str(value.get("on_exceed", "warn")), value.get("time")
            if action not in ("warn", "fail"):
                self.err(f"budget on_exceed must be warn or fail, got {action!r}", loc)
                return None
        try:
            seconds = duration(value) if not isinstance(value, bool) else -1.0
        except ValueError as exc:
            self.err(f"budget: {exc}", loc)
            return None
        if not 0 < seconds < math.inf:
            self.err(f"budget must be a positive duration (\"5m\", 90), got {plain(value)!r}", loc)
            return None
        return seconds, action

    def _block(
        self, raw: dict, phase: str, index: int, kloc: Any, sloc: Location, name: str, kw: dict, defaults: dict
    ) -> Step | None:
        """block/rescue/always: the block's keywords pushed down to every step inside it."""
        for k in raw:
            if k not in STEP_KEYWORDS and k not in BLOCK_KEYS:
                self.err(f"unknown key '{k}' in a block", kloc(k), hint="a block holds block:, rescue:, "
                         "always: and step keywords (when, become, vars, tags ...); put modules in its steps")  # fmt: skip
        for k in ("register", "loop", "until", "retries", "undo", "fallback", "notify", "run_once"):
            if k in raw:
                self.err(f"'{k}' does not apply to a block", kloc(k), hint=f"write {k}: on the steps inside it")
        parts: dict[str, tuple[Step, ...]] = {}
        for key in BLOCK_KEYS:
            items = raw.get(key)
            if items is None:
                continue
            if not isinstance(items, list) or (key == "block" and not items):
                self.err(f"{key} must be a list of steps", kloc(key))
                continue
            parts[key] = self.steps(items, f"{phase}[{index}].{key}", kloc(key), defaults)
        block = Step(module="block", args=None, location=sloc, phase=phase, index=index, name=name or "block", **kw)
        inherited = {k: getattr(block, k) for k in INHERITED}
        return replace(
            block, when=(), vars={}, **{k: tuple(_inherit(s, inherited) for s in v) for k, v in parts.items()}
        )

    def _undo_none(self, value: Any, loc: Location | None) -> str | None:
        """``undo: none`` / ``undo: false`` / ``undo: {none: REASON}``: the step needs no undo. Returns
        the reason ("" when none is given), None when ``value`` is an undo step (or absent)."""
        if value is False or (isinstance(value, str) and value.strip().lower() in ("none", "false")):
            return ""
        if isinstance(value, dict) and list(value) == ["none"]:
            reason = value["none"]
            if reason is None or isinstance(reason, bool):
                return ""
            if not isinstance(reason, str):
                self.err(
                    f"undo: {{none: ...}} takes the reason as a string, got {plain(reason)!r}"[:200],
                    loc,
                    hint="e.g. 'undo: {none: \"idempotent cache warm\"}'",
                )
                return ""
            return reason.strip()
        return None

    def _keywords(self, raw: dict, kloc: Any, defaults: dict) -> dict[str, Any]:
        """The engine's keywords of one step (everything but name, module, undo and fallback)."""
        kw: dict[str, Any] = {}
        for key in ("register", "delegate_to", *become.KEYWORDS):
            if key in raw and raw[key] is not None and self.typed(raw[key], (str,), key, kloc(key)):
                kw[key] = raw[key]
        self.become(kw, kloc)
        for key in become.KEYWORDS:  # the runbook's defaults (checked where they are written)
            if key not in kw and defaults.get(key) is not None:
                kw[key] = defaults[key]
        if kw.get("register") and not is_variable_name(kw["register"]):
            self.err(
                f"register name '{kw['register']}' is not a valid variable name",
                kloc("register"),
                hint="use letters, digits and _ (not starting with a digit, not a keyword like 'for')",
            )
        for key, rule in NUMBER_KEYWORDS.items():
            types = (int, str) if rule.get("integer") else (int, float, str)
            if key in raw and self.typed(raw[key], types, key, kloc(key)) and self._number(key, raw[key], kloc, **rule):
                kw[key] = raw[key]
        for key in ("no_log", "ignore_errors", "run_once", "become", "changes"):
            if key in raw and self.typed(raw[key], (bool, str), key, kloc(key)):
                value = raw[key]
                if isinstance(value, str) and not is_template(value) and value.lower() not in BOOL_WORDS:
                    self.err(
                        f"{key} must be true or false (or a {{{{ template }}}}), got {value!r}",
                        kloc(key),
                    )
                else:
                    kw[key] = value
        if "tags" in raw:
            tags = raw["tags"]
            tags = [tags] if isinstance(tags, str) else tags
            if self.typed(tags, (list,), "tags", kloc("tags")):
                kw["tags"] = tuple(str(t) for t in tags)
        kw["tags"] = tuple(dict.fromkeys((*kw.get("tags", ()), *defaults.get("tags", ()))))
        if "become" not in kw and defaults.get("become") is not None:
            kw["become"] = defaults["become"]
        if "timeout" not in kw and defaults.get("timeout") is not None:
            kw["timeout"] = defaults["timeout"]
        kw["when"] = self.conditions(raw.get("when"), "when", kloc("when"))
        kw["until"] = self.conditions(raw.get("until"), "until", kloc("until"))
        for key in ("changed_when", "failed_when"):
            if key in raw:
                kw[key] = self.conditions(raw[key], key, kloc(key))
        if "loop" in raw:
            loop = raw["loop"]
            if isinstance(loop, list) or is_template(loop):
                kw["loop"] = loop
            elif loop is not None:
                self.err(
                    f"loop must be a list or a {{{{ template }}}} giving one, got {plain(loop)!r}"[:200],
                    kloc("loop"),
                    hint="use '| dict2items' to loop over a mapping"
                    if isinstance(loop, dict)
                    else "write the items as a YAML list: loop: [a, b]",
                )
        lc = raw.get("loop_control")
        if lc is not None and self.typed(lc, (dict,), "loop_control", kloc("loop_control")):
            for k in lc:
                if k not in ("loop_var", "label", "index_var", "pause"):
                    self.err(
                        f"unknown loop_control key '{k}'", kloc("loop_control"), hint="use loop_var or label"
                    )
            for var in ("loop_var", "index_var"):
                if lc.get(var) is not None and not is_variable_name(lc[var]):
                    self.err(
                        f"loop_control.{var} {lc[var]!r} is not a valid variable name",
                        kloc("loop_control"),
                        hint="use letters, digits and _ (not starting with a digit)",
                    )
            kw["loop_var"] = str(lc.get("loop_var") or "item")
            kw["loop_label"] = lc.get("label")
            if lc.get("index_var") is not None:
                kw["loop_index_var"] = str(lc["index_var"])
            pause = lc.get("pause", 0)
            problem = number_problem(pause)  # a template is checked once rendered, at run time
            if problem:
                self.err(f"loop_control.pause {problem} (seconds)", kloc("loop_control"))
            else:
                kw["loop_pause"] = pause if is_template(pause) else float(pause)
        for key in ("notify", "listen"):
            if key in raw and raw[key] is not None:
                names = [raw[key]] if isinstance(raw[key], str) else raw[key]
                if self.typed(names, (list,), key, kloc(key)):
                    kw[key] = tuple(str(n) for n in names)
        if "environment" in raw and raw["environment"] is not None:
            env = raw["environment"]
            if isinstance(env, dict) or (isinstance(env, str) and is_template(env)):
                kw["environment"] = env
            else:
                self.err("environment must be a mapping (NAME: value) or a {{ template }} giving one",
                         kloc("environment"))  # fmt: skip
        if raw.get("budget") is not None:
            budget = self._budget(raw["budget"], kloc("budget"))
            if budget is not None and "block" not in raw:
                self.err("budget applies to a block of steps", kloc("budget"),
                         hint="put the steps in a block: (with budget: on it); for one step, timeout: stops it")  # fmt: skip
            elif budget is not None:
                kw["budget"] = budget
        if "check_mode" in raw and self.typed(raw["check_mode"], (bool,), "check_mode", kloc("check_mode")):
            kw["check_mode"] = raw["check_mode"]
            probe = next((k for k in raw if k in ("shell", "command", "ansible.builtin.shell", "ansible.builtin.command")), None)
            if raw["check_mode"] is False and probe is None:
                self.err(
                    "check_mode: false would make this step change things during plan/--dry-run",
                    kloc("check_mode"),
                    hint="runbook runs only read-only probes in a plan: a shell/command step with check_mode: "
                    "false (or changes: false)",
                )
            elif raw["check_mode"] is False and "changes" not in raw:
                kw["changes"] = False  # a read-only probe: it runs in plans too, as Ansible's would
        if (
            "vars" in raw
            and raw["vars"] is not None
            and self.typed(raw["vars"], (dict,), "vars", kloc("vars"))
        ):
            self.var_names(raw["vars"], "vars", kloc("vars"))
            kw["vars"] = raw["vars"]
        return kw

    def steps(self, raw: Any, phase: str, loc: Location | None, defaults: dict) -> tuple[Step, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.err(
                f"'{phase}' must be a list of steps",
                loc,
                hint=f"write '{phase}:' then '- module: args' items",
            )
            return ()
        out = []
        for i, item in enumerate(raw):
            iloc = raw.item_loc(i) if isinstance(raw, YList) else loc
            st = self.step(item, phase, i, iloc, defaults)
            if st is not None:
                out.append(st)
        return tuple(out)


def _inherit(step: Step, kw: Mapping[str, Any]) -> Step:
    """A step inside a block, with the block's keywords (its own win; conditions add up)."""
    changes: dict[str, Any] = {
        "when": (*kw["when"], *step.when),
        "tags": tuple(dict.fromkeys((*step.tags, *kw["tags"]))),
        "vars": {**kw["vars"], **step.vars} if kw["vars"] else step.vars,
    }
    for key in ("become", "become_user", "become_method", "become_flags", "environment", "check_mode",
                "delegate_to", "timeout"):  # fmt: skip
        if getattr(step, key) is None and kw[key] is not None:
            changes[key] = kw[key]
    if kw["no_log"] is True and not step.no_log:
        changes["no_log"] = True
    if kw["ignore_errors"] is True and not step.ignore_errors:
        changes["ignore_errors"] = True
    if step.block:  # a block (never empty): what it says reaches its inner steps too
        outer = {**kw, "vars": kw["vars"]}
        changes.update({k: tuple(_inherit(s, outer) for s in getattr(step, k)) for k in BLOCK_KEYS})
        changes["when"], changes["vars"] = (), {}
    return replace(step, **changes)
