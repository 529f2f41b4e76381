"""The runbook model: YAML (with positions) -> frozen, typed objects, with actionable errors.

Module names are checked against the known step kinds by the caller (plan layer), which passes them in;
this module knows only the runbook format itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.errors import Location, ValidationError
from runbook.model import become
from runbook.model.ansible_tasks import PLAY_IGNORED, PLAY_REFUSED, TaskReader, play_to_runbook
from runbook.model.loader import YDict, YList, load_vars_file, load_yaml_text, read_text
from runbook.model.step import STEP_KEYWORDS, Step, StepParser
from runbook.model.values import is_variable_name, number_problem, plain, suggest

__all__ = [
    "RUNBOOK_KEYS",
    "STEP_KEYWORDS",
    "Runbook",
    "Step",
    "Window",
    "errors_of",
    "load_runbook",
    "parse_runbook",
]

RUNBOOK_KEYS = {
    "name": "the runbook's name",
    "description": "what it does, for `runbook list`/`show`",
    "hosts": "inventory pattern of the hosts to run on (default: all)",
    "serial": "rolling batches, each a batch size: a number of hosts, or a percentage of all the targeted "
    "hosts (rounded down, at least 1); a list gives successive batch sizes, its last one repeating "
    "until every host ran ([1, '25%', '100%']: one canary, then a quarter at a time, then the rest)",
    "max_fail_percentage": "abort once more than this percentage of a batch failed (default 0)",
    "forks": "how many hosts run at once (default 10)",
    "lock": "take a per-host deploy lock for the run (true/false or a lock name)",
    "window": "maintenance window {start, end, tz, days}",
    "vars": "variables (they outrank the inventory's, as a play's vars do in Ansible)",
    "defaults": "default variables: the lowest precedence, below the inventory's group_vars/host_vars",
    "vars_files": "YAML files of variables, relative to the runbook (ansible-vault encrypted ones too)",
    "secrets": "names of variables that hold secrets whatever their names (masked everywhere)",
    "preflight": "read-only checks; any failure aborts before any change (exit 3)",
    "steps": "the steps that change things",
    "rollback": "auto | none | a list of steps run when a step fails",
    "rollback_scope": "host (default: roll back the failed host) | all (every host changed in this run)",
    "always": "steps that run at the end whatever happened",
    "handlers": "steps run once, at the end of the host's steps (or at meta: flush_handlers), when a step "
    "that notifies them changed something; and after a rollback undid a step that notifies them",
    "tags": "tags applied to every step",
    "become": "default become for every step",
    "become_user": "default become_user for every step",
    "become_method": "default become_method (sudo | su) for every step",
    "become_flags": "default become_flags for every step",
    "timeout": "default timeout (seconds) for every step",
}


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
    defaults: Mapping[str, Any] = field(default_factory=dict)
    preflight: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()
    rollback: str | tuple[Step, ...] = "auto"
    rollback_scope: str = "host"
    always: tuple[Step, ...] = ()
    handlers: tuple[Step, ...] = ()
    timeout: float | None = None
    location: Location | None = None
    key_locations: Mapping[str, Location] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()  # declared secret variables, and those of vault vars_files

    def loc(self, key: str) -> Location | None:
        """Where a top-level key (hosts, serial ...) is written, else the runbook itself."""
        return self.key_locations.get(key) or self.location

    def top_steps(self) -> list[Step]:
        """The steps of every phase, in phase order (not the nested undo/fallback steps)."""
        out = [*self.preflight, *self.steps, *self.always]
        if isinstance(self.rollback, tuple):
            out += self.rollback
        return out + list(self.handlers)

    def all_steps(self) -> list[Step]:
        """Every step, including the undo and fallback steps nested in them."""
        return [s for top in self.top_steps() for s in _with_nested(top)]

    def find_step(self, key: str) -> Step | None:
        """The step with this key (``steps[3]``, ``steps[3].fallback[0]``), or None."""
        return next((s for s in self.all_steps() if s.key == key), None)


def parse_runbook(text: str, path: str | Path, modules: Collection[str] | None = None) -> Runbook:
    """Parse runbook YAML text. Raises ValidationError (the first one; all are in ``.errors``)."""
    file = str(path)
    data = load_yaml_text(text, file)
    p = StepParser(file, modules)
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # an Ansible-style play list with one play
    if isinstance(data, list) and len(data) > 1:
        raise ValidationError(
            f"this file holds {len(data)} plays; a runbook is one play (one mapping: hosts:, steps: or "
            "tasks: ...)",
            location=Location(file, 1, 1),
            hint="split it into one runbook file per play (a play that only gathers facts can go: runbook "
            "gathers none)",
        )
    if not isinstance(data, dict):
        raise ValidationError(
            "a runbook must be a YAML mapping (name:, hosts:, preflight:, steps: ...)",
            location=Location(file, 1, 1),
            hint="see `runbook schema` or playbooks/local-smoke.yml",
        )
    reader = TaskReader(p.errors, file, Path(file).parent)
    if any(k in data for k in ("tasks", "pre_tasks", "post_tasks", *PLAY_REFUSED, *PLAY_IGNORED)):
        data = play_to_runbook(data, reader, Path(file).parent)  # an Ansible play
    for key in ("preflight", "steps", "always", "rollback", "handlers"):
        if key in data:
            data[key] = reader.tasks(data[key], Path(file).parent)
    kloc = data.key_loc if isinstance(data, YDict) else (lambda k: Location(file))
    for key in data:
        if key not in RUNBOOK_KEYS and not (isinstance(key, str) and key.startswith("x-")):
            sug = suggest(str(key), RUNBOOK_KEYS)
            p.err(
                f"unknown runbook key '{key}'",
                kloc(key),
                hint=sug
                or f"known keys: {', '.join(RUNBOOK_KEYS)} (keys starting with 'x-' are ignored: "
                "use them to hold YAML anchors)",
            )
    for key in ("name", "description"):
        if data.get(key) is not None and not isinstance(data[key], (str, int, float)):
            p.err(f"{key} must be a string, got {plain(data[key])!r}"[:200], kloc(key))
    name = data.get("name") if isinstance(data.get("name"), (str, int, float)) else None
    name = name or Path(file).stem
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
    for key in become.KEYWORDS:
        if data.get(key) is not None and p.typed(data[key], (str,), key, kloc(key)):
            defaults[key] = data[key]
    p.become(defaults, kloc)
    if "timeout" in data and p.typed(data["timeout"], (int, float), "timeout", kloc("timeout")):
        problem = number_problem(data["timeout"], positive=True)
        if problem:
            p.err(f"timeout {problem}", kloc("timeout"))
        else:
            defaults["timeout"] = data["timeout"]
    serial_raw = data.get("serial")
    serial: tuple[int | str, ...] = ()
    if serial_raw is not None:
        items = serial_raw if isinstance(serial_raw, list) else [serial_raw]
        if not items:
            p.err("serial is an empty list", kloc("serial"), hint="remove it to run all hosts at once")
        for i, it in enumerate(items):
            problem = _serial_problem(it)
            if problem:
                where = serial_raw.item_loc(i) if isinstance(serial_raw, YList) else kloc("serial")
                p.err(
                    f"serial item {plain(it)!r} {problem}"[:200],
                    where,
                    hint="a batch size is a number of hosts (at least 1) or a percentage from 1% to 100%",
                )
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
    window = _window(p, data.get("window"), kloc("window"))
    var_defaults = data.get("defaults") or {}
    if not isinstance(var_defaults, dict):
        p.err("defaults must be a mapping", kloc("defaults"))
        var_defaults = {}
    p.var_names(var_defaults, "defaults", kloc("defaults"))
    vars_ = data.get("vars") or {}
    if not isinstance(vars_, dict):
        p.err("vars must be a mapping", kloc("vars"))
        vars_ = {}
    p.var_names(vars_, "vars", kloc("vars"))
    secret_names = set(_secret_names(p, data.get("secrets"), kloc("secrets")))
    vars_files = data.get("vars_files") or []
    if vars_files:
        merged: dict[str, Any] = {}
        listed = vars_files if isinstance(vars_files, list) else [vars_files]
        for vf in listed:
            vloc = kloc("vars_files")
            if not isinstance(vf, str) or not vf.strip():
                p.err(f"vars_files item {plain(vf)!r} must be a file path"[:200], vloc)
                continue
            vpath = Path(file).parent / vf
            if not vpath.exists():
                p.err(
                    f"vars file not found: {vpath}",
                    vloc,
                    hint="vars_files paths are relative to the runbook's directory",
                )
                continue
            try:
                content, encrypted = load_vars_file(vpath, "vars file")
            except ValidationError as exc:
                p.errors.append(exc)
                continue
            if content is not None and not isinstance(content, dict):
                p.err(
                    f"vars file {vpath} must hold a mapping of variables (name: value)",
                    vloc,
                    hint=f"it holds {'a list' if isinstance(content, list) else 'a single value'}",
                )
                continue
            p.var_names(content or {}, f"vars file {vpath.name}", vloc)
            merged.update(content or {})
            if encrypted:  # every value of an ansible-vault file is a secret
                secret_names.update(str(k) for k in content or {})
        merged.update(vars_)
        vars_ = merged
    preflight = p.steps(data.get("preflight"), "preflight", kloc("preflight"), defaults)
    steps = p.steps(data.get("steps"), "steps", kloc("steps"), defaults)
    always = p.steps(data.get("always"), "always", kloc("always"), defaults)
    handlers = p.steps(data.get("handlers"), "handlers", kloc("handlers"), defaults)
    _check_notify(p, [*preflight, *steps, *always, *handlers], handlers, kloc("handlers"))
    rb = data.get("rollback", "auto")
    rollback: str | tuple[Step, ...]
    if rb in ("auto", None, True):
        rollback = "auto"
    elif rb in ("none", False, "manual"):
        rollback = "none"
    elif isinstance(rb, list):
        rollback = p.steps(rb, "rollback", kloc("rollback"), defaults)
    else:
        p.err(
            f"rollback must be 'auto', 'none' or a list of steps, got {plain(rb)!r}"[:200],
            kloc("rollback"),
            hint="rollback: auto undoes the completed steps; a list gives the steps to run instead",
        )
        rollback = "auto"
    scope = data.get("rollback_scope", "host")
    if scope not in ("host", "all"):
        p.err("rollback_scope must be 'host' or 'all'", kloc("rollback_scope"))
        scope = "host"
    if not data.get("preflight") and not data.get("steps"):
        p.err("the runbook has no preflight and no steps", Location(file, 1, 1), hint="add a 'steps:' list")
    hosts = data.get("hosts", "all")
    if isinstance(hosts, list) and all(isinstance(h, (str, int)) for h in hosts):
        hosts = ":".join(str(h) for h in hosts)
    if not isinstance(hosts, str) or not hosts.strip():
        p.err(
            f"hosts must be an inventory pattern (a group or host name), got {plain(hosts)!r}"[:200],
            kloc("hosts"),
            hint="e.g. hosts: all, hosts: web, hosts: 'web:!web3' or a list of names",
        )
        hosts = "all"
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
        defaults=var_defaults,
        preflight=preflight,
        steps=steps,
        rollback=rollback,
        rollback_scope=scope,
        always=always,
        handlers=handlers,
        timeout=defaults.get("timeout"),
        location=Location(file, 1, 1),
        key_locations={str(k): loc for k in data if (loc := kloc(k)) is not None},
        secrets=frozenset(secret_names),
    )


def _check_notify(p: StepParser, steps: list[Step], handlers: tuple[Step, ...], where: Location | None) -> None:
    """Every notify: names a handler (by name or listen topic), as Ansible requires."""
    known = {h.name for h in handlers if h.name} | {t for h in handlers for t in h.listen}
    for step in (s for top in steps for s in _with_nested(top)):
        if step.listen and step.phase != "handlers":
            p.err("listen: is a handler's keyword", step.loc("listen"), hint="move the step under handlers:")
        for name in step.notify:
            if name not in known:
                sug = suggest(name, sorted(known))
                p.err(
                    f"notify: no handler named {name!r}",
                    step.loc("notify"),
                    hint=(sug + " " if sug else "")
                    + ("handlers: " + ", ".join(sorted(known)) if known else "add a handlers: list with a step named so"),
                )


def _secret_names(p: StepParser, value: Any, where: Location | None) -> list[str]:
    """``secrets: [bearer, pwd]``: variable names (a list of them, or one name)."""
    if value is None:
        return []
    listed = value if isinstance(value, list) else [value]
    if not isinstance(value, (list, str)):
        p.err(f"secrets must be a list of variable names, got {plain(value)!r}"[:200], where)
        return []
    names = []
    for name in listed:
        if not isinstance(name, str) or not is_variable_name(name):
            p.err(
                f"secrets: {plain(name)!r} is not a variable name"[:200],
                where,
                hint="list the names of the variables that hold secrets, e.g. secrets: [bearer, pwd]",
            )
            continue
        names.append(name)
    return names


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW_KEYS = ("start", "end", "tz", "days")


def _serial_problem(item: Any) -> str | None:
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        return "must be a number or a percentage like '25%'"
    text = str(item).strip()
    m = re.fullmatch(r"([0-9]+)(%?)", text)
    if not m:
        return "must be a number or a percentage like '25%'"
    n = int(m.group(1))
    if n < 1:
        return "must be at least 1"
    if m.group(2) and n > 100:
        return "is more than 100%"
    return None


def _window(p: StepParser, w: Any, loc: Location | None) -> Window | None:
    """The maintenance window, checked here (HH:MM times, a known time zone, day names) so that a
    typo is reported with its line by validate and plan, not only by exec at the window check."""
    if w is None:
        return None
    if not p.typed(w, (dict,), "window", loc):
        return None
    wloc = w.key_loc if isinstance(w, YDict) else (lambda k: loc)
    ok = True
    for key in w:
        if key not in _WINDOW_KEYS:
            sug = suggest(str(key), _WINDOW_KEYS)
            p.err(f"unknown window key '{key}'", wloc(key), hint=sug or "window keys: start, end, tz, days")
            ok = False
    if "start" not in w or "end" not in w:
        p.err("window needs start and end, e.g. {start: '01:00', end: '03:00', tz: UTC}", loc)
        return None
    for key in ("start", "end"):
        if not isinstance(w[key], str) or not re.fullmatch(r"([01]?[0-9]|2[0-3]):[0-5][0-9]", w[key].strip()):
            p.err(
                f"window {key} {plain(w[key])!r} is not a time of day HH:MM",
                wloc(key),
                hint="quote it: start: '01:00' (unquoted 01:00 is read by YAML as a number)",
            )
            ok = False
    tz = w.get("tz", "UTC")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(str(tz))
    except (ValueError, LookupError, OSError):
        p.err(
            f"unknown time zone {tz!r} in window",
            wloc("tz"),
            hint="use an IANA name like UTC or Europe/Paris",
        )
        ok = False
    days = w.get("days") or []
    if not isinstance(days, list) or any(not isinstance(d, str) or d.lower()[:3] not in _DAYS for d in days):
        p.err(
            f"window days must be a list of day names, got {plain(days)!r}"[:200],
            wloc("days"),
            hint="e.g. days: [mon, tue, wed, thu, fri]",
        )
        ok = False
    if not ok:
        return None
    return Window(w["start"].strip(), w["end"].strip(), str(tz), tuple(days))


def _with_nested(step: Step) -> Iterator[Step]:
    yield step
    yield from step.nested()


def load_runbook(path: str | Path, modules: Collection[str] | None = None) -> Runbook:
    p = Path(path)
    return parse_runbook(read_text(p, "runbook"), p, modules)


def errors_of(exc: ValidationError) -> list[ValidationError]:
    return list(getattr(exc, "errors", None) or [exc])
