"""The runbook model: YAML (with positions) -> frozen, typed objects, with actionable errors.

Module names are checked against the known step kinds by the caller (plan layer), which passes them in;
this module knows only the runbook format itself.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runbook.errors import Location, ValidationError
from runbook.model.loader import YDict, YList, load_yaml_text

STEP_KEYWORDS = {
    "name": "a human-readable label for the step",
    "when": "condition(s) (Jinja2 expressions, without braces) that must all be true to run",
    "register": "variable name to store the step's result in",
    "loop": "a list to run the step once per item (as `item`)",
    "loop_control": "{loop_var, label}",
    "retries": "how many times to retry a failed step",
    "delay": "seconds to wait before the first retry",
    "backoff": "multiply the delay by this after each retry",
    "until": "condition(s) that must hold for the step to succeed (retried until true)",
    "timeout": "seconds after which the step is stopped and fails",
    "tags": "labels for --tags / --skip-tags",
    "become": "run with sudo (as become_user)",
    "become_user": "user to become (default root)",
    "no_log": "hide this step's command, output and result everywhere",
    "changed_when": "condition deciding whether the step changed something",
    "failed_when": "condition deciding whether the step failed",
    "ignore_errors": "carry on when the step fails",
    "delegate_to": "run the step on another inventory host (e.g. localhost)",
    "run_once": "run on the first host of the batch only, share the result",
    "undo": "a step (module: args) that undoes this one during rollback",
    "vars": "variables for this step only",
    "changes": "false marks a shell/command step as a read-only probe",
}

RUNBOOK_KEYS = {
    "name": "the runbook's name",
    "description": "what it does, for `runbook list`/`show`",
    "hosts": "inventory pattern of the hosts to run on (default: all)",
    "serial": "rolling batches: a number, a percentage, or a list of them",
    "max_fail_percentage": "abort once more than this percentage of a batch failed (default 0)",
    "forks": "how many hosts run at once (default 10)",
    "lock": "take a per-host deploy lock for the run (true/false or a lock name)",
    "window": "maintenance window {start, end, tz, days}",
    "vars": "variables",
    "vars_files": "YAML files of variables, relative to the runbook",
    "preflight": "read-only checks; any failure aborts before any change (exit 3)",
    "steps": "the steps that change things",
    "rollback": "auto | none | a list of steps run when a step fails",
    "rollback_scope": "host (default: roll back the failed host) | all (every host changed in this run)",
    "always": "steps that run at the end whatever happened",
    "tags": "tags applied to every step",
    "become": "default become for every step",
    "timeout": "default timeout (seconds) for every step",
}


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


def _plain(value: Any) -> Any:
    """YDict/YList -> dict/list, for messages."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class Step:
    module: str
    args: Any
    location: Location
    phase: str
    index: int
    name: str = ""
    when: tuple[Any, ...] = ()
    register: str | None = None
    loop: Any = None
    loop_var: str = "item"
    loop_label: str | None = None
    retries: int | None = None
    delay: float = 1.0
    backoff: float = 1.0
    until: tuple[Any, ...] = ()
    timeout: float | None = None
    tags: tuple[str, ...] = ()
    become: bool | None = None
    become_user: str | None = None
    no_log: bool = False
    changed_when: tuple[Any, ...] | None = None
    failed_when: tuple[Any, ...] | None = None
    ignore_errors: bool = False
    delegate_to: str | None = None
    run_once: bool = False
    undo: Step | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    changes: bool | None = None
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
        """Stable identifier within the runbook: phase and position."""
        return f"{self.phase}[{self.index}]"


@dataclass(frozen=True)
class Window:
    start: str
    end: str
    tz: str = "UTC"
    days: tuple[str, ...] = ()


@dataclass(frozen=True)
class Runbook:
    name: str
    path: Path
    sha256: str
    description: str = ""
    hosts: str = "all"
    serial: tuple[int | str, ...] = ()
    max_fail_percentage: float = 0.0
    forks: int | None = None
    lock: str | None = None
    window: Window | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    preflight: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()
    rollback: str | tuple[Step, ...] = "auto"
    rollback_scope: str = "host"
    always: tuple[Step, ...] = ()
    timeout: float | None = None
    location: Location | None = None

    def all_steps(self) -> list[Step]:
        out = [*self.preflight, *self.steps, *self.always]
        if isinstance(self.rollback, tuple):
            out += self.rollback
        out += [s.undo for s in self.steps if s.undo is not None]
        return out


# ------------------------------------------------------------------------------------------ parsing


class _P:
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
            self.err(f"{what} must be {names}, got {got}: {_plain(value)!r}"[:300], loc)
        return ok

    def conditions(self, value: Any, what: str, loc: Location | None) -> tuple[Any, ...]:
        if value is None:
            return ()
        if isinstance(value, list):
            return tuple(value)
        if isinstance(value, (str, bool, int)):
            return (value,)
        self.err(f"{what} must be an expression or a list of expressions", loc)
        return ()

    def step(self, raw: Any, phase: str, index: int, loc: Location | None, defaults: dict) -> Step | None:
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
                        sug = _suggest(str(k), STEP_KEYWORDS)
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
                    f"'{k}': {_suggest(str(k), [*(self.modules or ()), *STEP_KEYWORDS]) or 'unknown'}"
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
            sug = _suggest(module, list(self.modules) + list(STEP_KEYWORDS))
            self.err(
                f"unknown module '{module}'",
                kloc(module),
                hint=(sug + " " if sug else "") + "run `runbook schema` for the list of modules",
            )
            return None
        kw: dict[str, Any] = {}
        name = raw.get("name", "")
        if name is not None and not isinstance(name, str):
            name = str(name)
        for key in ("register", "delegate_to", "become_user"):
            if key in raw and raw[key] is not None and self.typed(raw[key], (str,), key, kloc(key)):
                kw[key] = raw[key]
        if kw.get("register") and not str(kw["register"]).isidentifier():
            self.err(f"register name '{kw['register']}' is not a valid variable name", kloc("register"))
        for key in ("retries",):
            if key in raw and self.typed(raw[key], (int, str), key, kloc(key)):
                kw[key] = raw[key]
        for key in ("delay", "backoff", "timeout"):
            if key in raw and self.typed(raw[key], (int, float, str), key, kloc(key)):
                kw[key] = raw[key]
        for key in ("no_log", "ignore_errors", "run_once", "become", "changes"):
            if key in raw and self.typed(raw[key], (bool, str), key, kloc(key)):
                kw[key] = raw[key]
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
        if "changed_when" in raw:
            kw["changed_when"] = self.conditions(raw["changed_when"], "changed_when", kloc("changed_when"))
        if "failed_when" in raw:
            kw["failed_when"] = self.conditions(raw["failed_when"], "failed_when", kloc("failed_when"))
        if "loop" in raw:
            kw["loop"] = raw["loop"]
        lc = raw.get("loop_control")
        if lc is not None and self.typed(lc, (dict,), "loop_control", kloc("loop_control")):
            for k in lc:
                if k not in ("loop_var", "label", "index_var", "pause"):
                    self.err(
                        f"unknown loop_control key '{k}'", kloc("loop_control"), hint="use loop_var or label"
                    )
            kw["loop_var"] = str(lc.get("loop_var", "item"))
            kw["loop_label"] = lc.get("label")
        if "vars" in raw and self.typed(raw["vars"], (dict,), "vars", kloc("vars")):
            kw["vars"] = raw["vars"]
        if "undo" in raw and raw["undo"] is not None:
            undo = self.step(raw["undo"], f"{phase}[{index}].undo", 0, kloc("undo"), {})
            if undo is not None and not undo.name:  # shown as "undo: <step>", not as its module
                undo = replace(undo, name=f"undo: {name or module}")
            kw["undo"] = undo
        if isinstance(raw, YDict):
            kw["keyword_locations"] = {str(k): raw.key_loc(k) for k in raw if k in STEP_KEYWORDS}
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


def parse_runbook(text: str, path: str | Path, modules: Collection[str] | None = None) -> Runbook:
    """Parse runbook YAML text. Raises ValidationError (the first one; all are in ``.errors``)."""
    file = str(path)
    data = load_yaml_text(text, file)
    p = _P(file, modules)
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # an Ansible-style play list with one play
    if isinstance(data, list) and len(data) > 1:
        raise ValidationError(
            f"this file holds {len(data)} plays; a runbook is one mapping (name:, hosts:, steps: ...)",
            location=Location(file, 1, 1),
            hint="split it into one runbook file per play",
        )
    if not isinstance(data, dict):
        raise ValidationError(
            "a runbook must be a YAML mapping (name:, hosts:, preflight:, steps: ...)",
            location=Location(file, 1, 1),
            hint="see `runbook schema` or playbooks/local-smoke.yml",
        )
    kloc = data.key_loc if isinstance(data, YDict) else (lambda k: Location(file))
    for key in data:
        if key not in RUNBOOK_KEYS:
            sug = _suggest(str(key), RUNBOOK_KEYS)
            p.err(
                f"unknown runbook key '{key}'",
                kloc(key),
                hint=sug or f"known keys: {', '.join(RUNBOOK_KEYS)}",
            )
    name = data.get("name") or Path(file).stem
    defaults: dict[str, Any] = {}
    if data.get("tags") is not None:
        tags = data["tags"]
        tags = [tags] if isinstance(tags, str) else tags
        if p.typed(tags, (list,), "tags", kloc("tags")):
            defaults["tags"] = tuple(str(t) for t in tags)
    if "become" in data:
        defaults["become"] = data["become"]
    if "become" in data and not isinstance(data["become"], bool):
        p.typed(data["become"], (bool,), "become", kloc("become"))
    if "timeout" in data and p.typed(data["timeout"], (int, float), "timeout", kloc("timeout")):
        defaults["timeout"] = data["timeout"]
    serial_raw = data.get("serial")
    serial: tuple[int | str, ...] = ()
    if serial_raw is not None:
        items = serial_raw if isinstance(serial_raw, list) else [serial_raw]
        for it in items:
            if (
                isinstance(it, bool)
                or not isinstance(it, (int, str))
                or (isinstance(it, str) and not (it.rstrip("%").strip().isdigit()))
            ):
                p.err(f"serial item {it!r} must be a number or a percentage like '25%'", kloc("serial"))
            elif isinstance(it, int) and it < 1:
                p.err("serial batch sizes must be at least 1", kloc("serial"))
        serial = tuple(items)
    mfp = data.get("max_fail_percentage", 0)
    if not isinstance(mfp, (int, float)) or isinstance(mfp, bool) or not 0 <= mfp <= 100:
        p.err("max_fail_percentage must be a number from 0 to 100", kloc("max_fail_percentage"))
        mfp = 0
    forks = data.get("forks")
    if forks is not None and (not isinstance(forks, int) or isinstance(forks, bool) or forks < 1):
        p.err("forks must be a positive integer", kloc("forks"))
        forks = None
    lock = data.get("lock")
    lock_name = None
    if lock is True:
        lock_name = str(name)
    elif isinstance(lock, str):
        lock_name = lock
    elif lock not in (None, False):
        p.err("lock must be true, false or a lock name", kloc("lock"))
    window = None
    if data.get("window") is not None:
        w = data["window"]
        if p.typed(w, (dict,), "window", kloc("window")):
            if "start" not in w or "end" not in w:
                p.err(
                    "window needs start and end, e.g. {start: '01:00', end: '03:00', tz: UTC}", kloc("window")
                )
            else:
                days = w.get("days") or ()
                window = Window(str(w["start"]), str(w["end"]), str(w.get("tz", "UTC")), tuple(days))
    vars_ = data.get("vars") or {}
    if not isinstance(vars_, dict):
        p.err("vars must be a mapping", kloc("vars"))
        vars_ = {}
    vars_files = data.get("vars_files") or []
    if vars_files:
        from runbook.model.loader import load_yaml_file

        merged: dict[str, Any] = {}
        for vf in vars_files if isinstance(vars_files, list) else [vars_files]:
            vpath = Path(file).parent / str(vf)
            if not vpath.is_file():
                p.err(
                    f"vars file not found: {vpath}",
                    kloc("vars_files"),
                    hint="vars_files paths are relative to the runbook's directory",
                )
                continue
            try:
                content = load_yaml_file(vpath)
            except ValidationError as exc:
                p.errors.append(exc)
                continue
            if content is not None and not isinstance(content, dict):
                p.err(f"vars file {vpath} must hold a mapping", kloc("vars_files"))
                continue
            merged.update(content or {})
        merged.update(vars_)
        vars_ = merged
    preflight = p.steps(data.get("preflight"), "preflight", kloc("preflight"), defaults)
    steps = p.steps(data.get("steps"), "steps", kloc("steps"), defaults)
    always = p.steps(data.get("always"), "always", kloc("always"), defaults)
    rb = data.get("rollback", "auto")
    rollback: str | tuple[Step, ...]
    if rb in ("auto", None, True):
        rollback = "auto"
    elif rb in ("none", False, "manual"):
        rollback = "none"
    elif isinstance(rb, list):
        rollback = p.steps(rb, "rollback", kloc("rollback"), defaults)
    else:
        p.err("rollback must be 'auto', 'none' or a list of steps", kloc("rollback"))
        rollback = "auto"
    scope = data.get("rollback_scope", "host")
    if scope not in ("host", "all"):
        p.err("rollback_scope must be 'host' or 'all'", kloc("rollback_scope"))
        scope = "host"
    if not data.get("preflight") and not data.get("steps"):
        p.err("the runbook has no preflight and no steps", Location(file, 1, 1), hint="add a 'steps:' list")
    hosts = data.get("hosts", "all")
    if isinstance(hosts, list):
        hosts = ":".join(str(h) for h in hosts)
    if p.errors:
        first = p.errors[0]
        exc = ValidationError(first.message, location=first.location, hint=first.hint)
        exc.errors = p.errors  # type: ignore[attr-defined]
        raise exc
    return Runbook(
        name=str(name),
        path=Path(file),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        description=str(data.get("description") or ""),
        hosts=str(hosts),
        serial=serial,
        max_fail_percentage=float(mfp),
        forks=forks,
        lock=lock_name,
        window=window,
        vars=vars_,
        preflight=preflight,
        steps=steps,
        rollback=rollback,
        rollback_scope=scope,
        always=always,
        timeout=defaults.get("timeout"),
        location=Location(file, 1, 1),
    )


def load_runbook(path: str | Path, modules: Collection[str] | None = None) -> Runbook:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"runbook file not found: {p}") from None
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"runbook is not UTF-8 text ({exc.reason})", location=Location(str(p))
        ) from None
    except OSError as exc:  # a directory, no permission
        raise ValidationError(
            f"cannot read the runbook: {exc.strerror or exc}", location=Location(str(p))
        ) from None
    return parse_runbook(text, p, modules)


def errors_of(exc: ValidationError) -> list[ValidationError]:
    return list(getattr(exc, "errors", None) or [exc])
