"""Ansible's task syntax, read into runbook's: what an Ansible task file or play says, rewritten
(before the step parser sees it) into the runbook keywords that mean the same thing.

- ``include_tasks`` / ``import_tasks`` (and their ansible.builtin names): the file's tasks, inline,
  as a block carrying the include's when/tags/vars/become (resolved as Ansible resolves them:
  relative to the including file's directory, then the runbook's). The file name must be written
  literally (a dynamic include is refused: runbook plans every step before it runs).
- ``with_items`` (one level flattened) / ``with_list`` / ``with_dict`` -> ``loop``.
- ``args:`` -> merged into the module's arguments (free-form text stays the free-form argument).
- ``local_action`` is refused with its equivalent (``delegate_to: localhost``).
- A play's ``tasks`` / ``pre_tasks`` / ``post_tasks`` -> ``steps`` (handlers notified in pre_tasks
  and tasks are flushed between them, as Ansible does), and the play keys runbook has no use for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runbook.errors import Location, ValidationError
from runbook.model.loader import YDict, YList, load_yaml_file

INCLUDES = ("include_tasks", "import_tasks", "ansible.builtin.include_tasks", "ansible.builtin.import_tasks")
WITH_LOOPS = ("with_items", "with_list", "with_dict")
# Ansible's task keywords a step may be written with; the loader reads them as runbook's own (loop:,
# the module's arguments): the schema lists them beside the step keywords.
TASK_KEYWORDS: dict[str, str] = {
    "with_items": "Ansible's: loop over the items (one level flattened)",
    "with_list": "Ansible's: loop over the list",
    "with_dict": "Ansible's: loop over a mapping's item.key / item.value",
    "args": "Ansible's: arguments merged into the module's",
}
MAX_INCLUDE_DEPTH = 20

# Play keys runbook accepts (and ignores) and the ones it refuses with the runbook way to say it.
PLAY_IGNORED = {
    "gather_facts": "runbook gathers no facts: ansible_facts is not defined (read what a step needs with "
    "a shell/command step and register:)",
}
PLAY_REFUSED = {
    "roles": "runbook does not run roles: include a role's tasks with include_tasks: "
    "roles/NAME/tasks/main.yml and list its handlers under handlers:",
    "remote_user": "set ansible_user in the inventory (runbook connects as the inventory says)",
    "connection": "set ansible_connection in the inventory (e.g. ansible_connection=local)",
    "any_errors_fatal": "use max_fail_percentage: 0 (the default: a failed host stops the rollout)",
    "strategy": "runbook runs every host through the steps in order (forks: sets how many at once)",
    "collections": "write modules by their FQCN (community.general.npm)",
    "environment": "set environment: on the steps that need it",
    "module_defaults": "write the arguments on each step (YAML anchors help)",
    "force_handlers": "handlers run when the host's steps succeed; after a rollback, notify runs the "
    "handlers of the steps that were undone",
    "order": "hosts run in the inventory's order",
    "vars_prompt": "pass the values with -e name=value",
}
STEP_REFUSED = {
    "local_action": "use the module as the step's key and delegate_to: localhost",
    "with_fileglob": "use loop: \"{{ query('fileglob', ...) }}\" is not supported: list the files in vars",
    "with_together": 'use loop: "{{ a | zip(b) | list }}"',
    "with_nested": 'use loop: "{{ a | product(b) | list }}"',
    "with_sequence": 'use loop: "{{ range(start, end) | list }}"',
    "with_subelements": "use loop with a subelements expression built in vars",
    "async": "runbook bounds every step with timeout:; a background job is a shell step with nohup",
    "poll": "runbook bounds every step with timeout:",
    "connection": "set ansible_connection in the inventory or use delegate_to: localhost",
    "remote_user": "set ansible_user in the inventory",
    "include": "use include_tasks: (a task file) — include: was removed from Ansible",
    "include_role": "include the role's tasks file with include_tasks: roles/NAME/tasks/main.yml",
    "import_role": "include the role's tasks file with include_tasks: roles/NAME/tasks/main.yml",
    "import_playbook": "run the other playbook as its own runbook (or with an ansible.playbook step)",
    "debugger": "use runbook's --verbose output and the audit trail",
    "throttle": "set forks: on the runbook",
    "action": "write the module as the step's key (action: shell echo hi -> shell: echo hi)",
    "diff": "runbook plan always shows the diffs of what would change: remove diff:",
    "any_errors_fatal": "use max_fail_percentage: 0 on the runbook (the default)",
    "with_first_found": "name the file (or choose it with a when: condition)",
    "module_defaults": "write the arguments on each step (YAML anchors help)",
    "become_exe": "use become_method: sudo or su (and become_flags)",
}


class TaskReader:
    """Rewrites raw task mappings (YDict) from runbooks and Ansible task files."""

    def __init__(self, errors: list[ValidationError], file: str, root_dir: Path):
        self.errors = errors
        self.file = file
        self.root_dir = root_dir

    def err(self, msg: str, loc: Location | None, hint: str | None = None) -> None:
        self.errors.append(ValidationError(msg, location=loc or Location(self.file), hint=hint))

    # ------------------------------------------------------------------------------ task lists
    def tasks(self, raw: Any, base_dir: Path, depth: int = 0) -> Any:
        """A list of tasks with Ansible's forms rewritten (anything else is returned as it is)."""
        if not isinstance(raw, list):
            return raw
        out = YList(self.task(t, base_dir, depth) for t in raw)
        if isinstance(raw, YList):
            out.loc, out._items = raw.loc, list(raw._items)
        return out

    def task(self, raw: Any, base_dir: Path, depth: int = 0) -> Any:
        if not isinstance(raw, dict):
            return raw
        kloc = raw.key_loc if isinstance(raw, YDict) else (lambda k: None)
        t = _copy(raw)
        for key in ("block", "rescue", "always"):
            if key in t:
                t[key] = self.tasks(t[key], base_dir, depth)
        include = next((k for k in INCLUDES if k in t), None)
        if include is not None:
            return self._include(t, include, base_dir, depth, kloc)
        for key in WITH_LOOPS:
            if key in t:
                self._with_loop(t, key, kloc)
        if "args" in t:
            self._args(t, kloc)
        return t

    # ------------------------------------------------------------------------------ include
    def _include(self, t: YDict, key: str, base_dir: Path, depth: int, kloc: Any) -> Any:
        spec = t.pop(key)
        name = spec.get("file") if isinstance(spec, dict) else spec
        if not isinstance(name, str) or not name.strip():
            self.err(f"{key} needs a task file's path", kloc(key), hint=f"e.g. {key}: tasks/deploy.yml")
            return t
        if "{{" in name or "{%" in name:
            self.err(
                f"{key}: {name!r} is a template; runbook includes only files named literally",
                kloc(key),
                hint="runbook plans every step before running any: name the file, and use when: on the "
                "include to choose",
            )
            return t
        if depth >= MAX_INCLUDE_DEPTH:
            self.err(f"{key}: task files include each other more than {MAX_INCLUDE_DEPTH} deep", kloc(key))
            return t
        path = next(
            (d / name for d in (base_dir, self.root_dir, self.root_dir / "tasks") if (d / name).is_file()),
            None,
        )
        if path is None:
            self.err(
                f"{key}: task file not found: {name}",
                kloc(key),
                hint=f"looked in {base_dir} and {self.root_dir} (paths are relative to the including file)",
            )
            return t
        try:
            content = load_yaml_file(path, "task file")
        except ValidationError as exc:
            self.errors.append(exc)
            return t
        if content is None:
            content = YList()
        if not isinstance(content, list):
            self.err(f"task file {path} must hold a list of tasks", Location(str(path), 1, 1))
            return t
        if isinstance(spec, dict):  # include_tasks: {file: x, apply: {tags: ...}}
            apply = spec.get("apply")
            if isinstance(apply, dict):
                for k, v in apply.items():
                    t.setdefault(k, v)
        block = YDict(t)
        if isinstance(t, YDict):
            block.loc, block._keys = t.loc, dict(t._keys)
        block["block"] = self.tasks(content, path.parent, depth + 1)
        if not block.get("name"):
            block["name"] = f"{key.split('.')[-1]}: {name}"
        return block

    # ------------------------------------------------------------------------------ with_* / args
    def _with_loop(self, t: YDict, key: str, kloc: Any) -> None:
        value = t.pop(key)
        if "loop" in t:
            self.err(f"{key} and loop together", kloc(key), hint="keep one of them")
            return
        if isinstance(t, YDict):
            t._keys["loop"] = kloc(key)
        if key == "with_dict":
            if isinstance(value, dict):
                t["loop"] = YList({"key": k, "value": v} for k, v in value.items())
            elif isinstance(value, str):
                t["loop"] = "{{ (" + _expr(value) + ") | dict2items }}"
            else:
                self.err("with_dict needs a mapping or a {{ template }} giving one", kloc(key))
            return
        if key == "with_items":  # Ansible flattens one level
            if isinstance(value, list):
                flat = YList()
                for v in value:
                    flat.extend(v if isinstance(v, list) else [v])
                t["loop"] = flat
            elif isinstance(value, str) and ("{{" in value):
                t["loop"] = "{{ (" + _expr(value) + ") | flatten(levels=1) }}"
            else:
                t["loop"] = YList([value])
            return
        t["loop"] = value if isinstance(value, (list, str)) else YList([value])

    def _args(self, t: YDict, kloc: Any) -> None:
        extra = t.pop("args")
        if not isinstance(extra, dict):
            self.err("args must be a mapping of the module's arguments", kloc("args"))
            return
        from runbook.model.step import STEP_KEYWORDS

        module = next((k for k in t if k not in STEP_KEYWORDS and k not in _TASK_ONLY), None)
        if module is None:
            return
        current = t[module]
        if isinstance(current, str):
            merged = YDict({"_raw_params": current, **extra})
        elif isinstance(current, dict) or current is None:
            merged = YDict({**extra, **(current or {})})
        else:
            self.err(f"args: the module {module}'s arguments are not a mapping", kloc("args"))
            return
        if isinstance(extra, YDict):
            merged.loc, merged._keys = extra.loc, dict(extra._keys)
        t[module] = merged


_TASK_ONLY = ("block", "rescue", "always", *WITH_LOOPS, "args")


def _expr(template: str) -> str:
    """The expression of a ``{{ expr }}`` text (else the text as a string constant)."""
    s = template.strip()
    if s.startswith("{{") and s.endswith("}}") and s.count("{{") == 1:
        return s[2:-2].strip()
    return repr(s)


def _copy(raw: dict) -> YDict:
    out = YDict(raw)
    if isinstance(raw, YDict):
        out.loc, out._keys = raw.loc, dict(raw._keys)
    return out


def play_to_runbook(data: YDict, reader: TaskReader, base_dir: Path) -> YDict:
    """An Ansible play (hosts + tasks/pre_tasks/post_tasks/handlers) as a runbook mapping."""
    kloc = data.key_loc if isinstance(data, YDict) else (lambda k: None)
    out = _copy(data)
    for key, why in PLAY_REFUSED.items():
        if key in out:
            reader.err(f"play key '{key}' is not supported", kloc(key), hint=why)
            out.pop(key)
    for key in PLAY_IGNORED:
        out.pop(key, None)
    parts = [k for k in ("pre_tasks", "tasks", "post_tasks") if k in out]
    if parts and "steps" in out:
        reader.err("a runbook has steps: or an Ansible play's tasks:, not both", kloc("steps"))
    if parts:
        steps = YList()
        steps.loc = kloc(parts[0])
        for i, key in enumerate(parts):
            items = out.pop(key) or []
            if not isinstance(items, list):
                reader.err(f"{key} must be a list of tasks", kloc(key))
                continue
            if i and "handlers" in out:  # Ansible flushes the handlers after each section
                flush = YDict({"meta": "flush_handlers", "name": f"flush handlers (after {parts[i - 1]})"})
                flush.loc = kloc(key)
                flush._keys = {"meta": kloc(key)}
                steps.append(flush)
                steps._items.append(kloc(key))
            steps.extend(items)
            steps._items.extend(items.item_loc(j) for j in range(len(items))) if isinstance(
                items, YList
            ) else None
        out["steps"] = steps
        if isinstance(out, YDict):
            out._keys["steps"] = kloc(parts[0])
    return out
