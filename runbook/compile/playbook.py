"""A runbook as an ordinary Ansible playbook (docs/ansible-engine.md has the full mapping).

Two plays on the runbook's hosts:

1. ``<name>: preflight`` -- every preflight step read-only (``read_only: true``: probes run for
   real, an action that would change the host fails the task), after the maintenance window check
   (``runbook.core.window``, once), ``any_errors_fatal: true``: one host failing stops every host
   before any change.
2. ``<name>`` -- ``serial`` and ``max_fail_percentage`` from the runbook; the steps in a ``block``
   whose ``rescue`` undoes, in reverse order, every step that registered a snapshot
   (``runbook.core.step`` with ``undo: true`` and the registered ``runbook_snapshot``), or runs the
   runbook's own ``rollback:`` steps, then fails the host (Ansible would count a rescued host as
   ok; runbook counts it as failed and rolled back); ``always:`` runs the runbook's always steps.
   The deploy lock (``lock:``) is ``runbook.core.lock``: taken first in the block, released last in
   ``always``.

Every step is a ``runbook.core.step`` task (the same step code, snapshots and undo as ``runbook
exec``), registered under its own ``register:`` name or ``runbook_step_<n>``; task keywords map
one to one (when, loop, retries/delay/until, changed_when, failed_when, ignore_errors, become*,
no_log, delegate_to, run_once, tags, timeout). Templates are left as written: Ansible renders them.
"""

from __future__ import annotations

from typing import Any

import yaml

from runbook.kinds.base import get as get_kind
from runbook.model.runbook import Runbook
from runbook.model.step import Step

STEP = "runbook.core.step"
# Molecule's tag for tasks its idempotence check leaves out: steps that change the host on every run
# by nature (a kind's ``changes_every_run``: a fresh backup) and the ``always:`` steps (the run's own
# record and notification: a re-run is a new run, so they act again).
NOTEST = "molecule-idempotence-notest"


def _changes_every_run(step: Step) -> bool:
    kind = get_kind(step.module)
    return kind is not None and kind.changes_every_run


def _var(step: Step, prefix: str) -> str:
    return step.register or f"runbook_{prefix}_{step.index + 1}"


def _number(value: Any) -> Any:
    """A number as Ansible likes it (2.0 -> 2); a template stays a template for Ansible to render."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _cond(exprs: tuple[Any, ...] | None) -> Any:
    if exprs is None:
        return None
    items = [str(e) if not isinstance(e, bool) else e for e in exprs]
    return items[0] if len(items) == 1 else items


def _args(step: Step, preflight: bool = False) -> Any:
    """The step's arguments as written (templates left for Ansible), with what runbook exec adds:
    ``changes`` for shell/command (the step keyword; preflight ones are probes)."""
    from runbook.kinds.base import get

    args = step.args
    kind = get(step.module)
    if kind is not None and kind.raw_shell and (preflight or step.changes is not None):
        args = dict(kind.normalize(args))  # (the author's command: `changes: false` makes it a probe)
        args["changes"] = False if preflight and step.changes is None else bool(step.changes)
    return args


def _own_retry(step: Step) -> bool:
    """A step whose delay grows (``backoff``) and that retries until it succeeds: Ansible's
    ``retries``/``delay`` sleep the same time between attempts, so runbook.core.step retries it
    (``retry: {retries, delay, backoff}``), as runbook exec does: the same attempts and waits.
    With ``until``/``changed_when``/``failed_when`` (judged on the registered result, by Ansible),
    Ansible's retries stay, with a fixed delay."""
    judged = bool(step.until) or step.changed_when is not None or step.failed_when is not None
    return step.backoff != 1 and not judged


def task(
    step: Step, prefix: str = "step", *, register: bool = True, preflight: bool = False
) -> dict[str, Any]:
    """One runbook step as an Ansible task (a block with rescue when it has fallback steps)."""
    t: dict[str, Any] = {"name": step.name or step.module, STEP: {"kind": step.module}}
    args = _args(step, preflight)
    if args not in (None, {}, ""):
        t[STEP]["args"] = args
    if preflight:
        t[STEP]["read_only"] = True
    if step.name:
        t[STEP]["name"] = step.name
    if register:
        t["register"] = _var(step, prefix)
    if step.when:
        t["when"] = _cond(step.when)
    if step.loop is not None:
        t["loop"] = step.loop
        control: dict[str, Any] = {}
        if step.loop_var != "item":
            control["loop_var"] = step.loop_var
        if step.loop_label:
            control["label"] = step.loop_label
        if step.loop_index_var:
            control["index_var"] = step.loop_index_var
        if step.loop_pause:
            control["pause"] = step.loop_pause
        if control:
            t["loop_control"] = control
    if step.retries is not None and _own_retry(step):  # backoff: runbook.core.step retries itself
        t[STEP]["retry"] = {
            "retries": step.retries,
            "delay": _number(step.delay),
            "backoff": _number(step.backoff),
        }
    elif step.retries is not None:
        t["retries"] = step.retries
        t["delay"] = _number(step.delay)
        t["until"] = _cond(step.until) if step.until else f"{_var(step, prefix)} is succeeded"
    for key in ("changed_when", "failed_when"):
        value = getattr(step, key)
        if value is not None:
            t[key] = _cond(value)
    if step.ignore_errors:
        t["ignore_errors"] = True
    if step.become is not None:
        t["become"] = step.become
    for key in ("become_user", "become_method", "become_flags", "delegate_to"):
        if getattr(step, key):
            t[key] = getattr(step, key)
    if step.no_log:
        t["no_log"] = True
    if step.run_once:
        t["run_once"] = True
    tags = list(step.tags or ())
    if _changes_every_run(step) and NOTEST not in tags:
        tags.append(NOTEST)
    if tags:
        t["tags"] = tags
    if step.timeout is not None:
        t["timeout"] = (
            max(1, int(step.timeout + 0.999)) if isinstance(step.timeout, int | float) else step.timeout
        )
    if step.vars:
        t["vars"] = dict(step.vars)
    if step.fallback:
        inner = {k: v for k, v in t.items() if k not in ("when", "tags")}
        block: dict[str, Any] = {
            "name": f"{t['name']} (with fallback)",
            "block": [inner],
            "rescue": [task(f, f"{prefix}_{step.index + 1}_fallback") for f in step.fallback],
        }
        for key in ("when", "tags"):
            if key in t:
                block[key] = t[key]
        return block
    return t


def undo_tasks(step: Step, prefix: str = "step") -> list[dict[str, Any]]:
    """What the rescue runs to undo one step: its own ``undo:`` step, or the kind's undo from the
    snapshot the step registered."""
    reg = _var(step, prefix)
    if step.undo_none is not None:
        return []
    if step.undo is not None:
        t = task(step.undo, f"{prefix}_{step.index + 1}_undo", register=False)
        t["name"] = f"undo: {step.name or step.module}"
        t["when"] = f"{reg} is defined and {reg} is changed"
        return [t]
    from runbook.kinds.base import get

    kind = get(step.module)
    if kind is None or not kind.can_undo:
        return []
    t = {
        "name": f"undo: {step.name or step.module}",
        STEP: {"kind": step.module, "undo": True, "snapshot": f"{{{{ {reg}.runbook_snapshot }}}}"},
        "when": f"{reg}.runbook_snapshot is defined",
    }
    args = _args(step)
    if args not in (None, {}, ""):
        t[STEP]["args"] = args
    for key in ("become", "become_user", "become_method", "become_flags", "delegate_to", "no_log"):
        value = getattr(step, key)
        if value not in (None, False, ""):
            t[key] = value
    return [t]


RUN_ID = "{{ lookup('runbook.core.run', 'id') }}"
STATUS = "runbook_status"  # set by the rescue: rollback_failed, then rolled_back (or failed)


def run_var(rb: Runbook, status: str) -> dict[str, Any]:
    """runbook's ``run`` variable: the run's id (runbook.core.run: the same in every task of one
    ansible-playbook run, ``-e runbook_run_id`` wins), its status, the runbook, check mode."""
    return {"id": RUN_ID, "status": status, "runbook": rb.name, "dry_run": "{{ ansible_check_mode }}"}


def _play_base(rb: Runbook, name: str) -> dict[str, Any]:
    play: dict[str, Any] = {"name": name, "hosts": rb.hosts, "gather_facts": False}
    variables = {**dict(rb.defaults), **dict(rb.vars)}
    variables.setdefault("run", run_var(rb, "running"))
    play["vars"] = variables
    return play


def _always(step: Step, rb: Runbook) -> dict[str, Any]:
    """An always: step; it sees the run's outcome as ``run.status`` (success unless the rescue ran)."""
    t = task(step, "always")
    if NOTEST not in t.get("tags", ()):
        t["tags"] = [*t.get("tags", ()), NOTEST]
    if "run" not in rb.vars and "run" not in rb.defaults:
        target = t["block"][0] if "block" in t else t
        target["vars"] = {
            "run": run_var(rb, f"{{{{ {STATUS} | default('success') }}}}"),
            **target.get("vars", {}),
        }
    return t


def compile_runbook(rb: Runbook) -> list[dict[str, Any]]:
    """The runbook as a list of Ansible plays."""
    plays: list[dict[str, Any]] = []
    if rb.preflight or rb.window:
        pre = _play_base(rb, f"{rb.name}: preflight")
        pre["any_errors_fatal"] = True
        pre["tasks"] = []
        if rb.window:
            w = rb.window
            spec: dict[str, Any] = {"start": w.start, "end": w.end, "tz": w.tz}
            if w.days:
                spec["days"] = list(w.days)
            pre["tasks"].append(
                {"name": "inside the maintenance window", "runbook.core.window": spec, "run_once": True}
            )
        pre["tasks"] += [task(s, "preflight", preflight=True) for s in rb.preflight]
        plays.append(pre)

    main = _play_base(rb, rb.name)
    if rb.serial:
        main["serial"] = list(rb.serial) if len(rb.serial) > 1 else rb.serial[0]
    main["max_fail_percentage"] = rb.max_fail_percentage
    if rb.forks:
        main["throttle"] = rb.forks
    first = "failed" if rb.rollback == "none" else "rollback_failed"  # until every undo task ran
    rescue: list[dict[str, Any]] = [{"name": "run status", "ansible.builtin.set_fact": {STATUS: first}}]
    if isinstance(rb.rollback, tuple):
        rescue += [task(s, "rollback", register=False) for s in rb.rollback]
    elif rb.rollback == "auto":
        for s in reversed(rb.steps):
            rescue += undo_tasks(s)
    if rb.rollback != "none":
        rescue.append(
            {"name": "run status: rolled back", "ansible.builtin.set_fact": {STATUS: "rolled_back"}}
        )
    rescue.append(
        {
            "name": "the run failed: rolled back",
            "ansible.builtin.fail": {
                "msg": "step '{{ ansible_failed_task.name }}' failed: "
                "{{ ansible_failed_result.msg | default('failed') }}"
                + ("; rolled back" if rb.rollback != "none" else "; no rollback (rollback: none)")
            },
        }
    )
    steps = [task(s) for s in rb.steps]
    always = [_always(s, rb) for s in rb.always]
    if rb.lock:  # the deploy lock: taken before the first step, released after the always steps
        steps.insert(0, {"name": "deploy lock", "runbook.core.lock": {"name": rb.lock}})
        always.append(
            {"name": "release the deploy lock", "runbook.core.lock": {"name": rb.lock, "state": "released"}}
        )
    block: dict[str, Any] = {"name": f"{rb.name}: steps", "block": steps}
    block["rescue"] = rescue
    if always:
        block["always"] = always
    main["tasks"] = [block]
    plays.append(main)
    return plays


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _plain(value: Any) -> Any:
    """Plain dicts, lists and scalars (the loader's mappings carry locations)."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for t in (str, int, float):
        if isinstance(value, t):
            return t(value)
    return str(value)


def to_yaml(plays: list[dict[str, Any]], header: str = "") -> str:
    text = yaml.dump(_plain(plays), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    return (header + "\n" if header else "") + "---\n" + text
