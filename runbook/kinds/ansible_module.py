"""Any installed Ansible module as a step (``ansible.builtin.apt``, ``ansible.posix.sysctl``,
``community.docker.docker_compose_v2`` …, or an ansible.builtin short name such as ``lineinfile``).

The name is resolved lazily, the first time a runbook names it, with Ansible's own plugin loader
(collections, redirects, ``ansible.legacy``). The step runs through ansible-runner: ONE
ansible-playbook process for every host of the batch that reaches the step (the hosts meet in
runbook.execute.gather), each host with its own rendered arguments; in a plan or ``--dry-run`` it
runs in Ansible's check mode with ``--diff``, and what Ansible says would change is shown as a
planned change with its diff. Ansible's result is what ``register`` holds. There is no snapshot:
like ``shell``, such a step cannot be undone unless it has an ``undo:`` step.

Runbook's own modules keep their native path: their ansible.builtin names are mapped to them
(runbook.kinds.ansible_builtin), and are never resolved here.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
import re
from pathlib import Path
from typing import Any, ClassVar

from runbook.actions import Client, Operation, Planned
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind
from runbook.render.secrets import leaves

# one ansible-playbook for every host of the batch at this step (runbook.execute.gather)
MODULES = Operation("ansible.modules", "runbook.execute.clients.ansible:modules", streams=True)

# Ansible task-level names that are not modules a one-task play can run (play structure, the
# controller's own state): the Ansible task syntax (runbook.model) handles those it supports.
NOT_MODULES = frozenset(
    {
        "include_tasks", "import_tasks", "include_role", "import_role", "import_playbook", "include",
        "meta", "add_host", "group_by", "set_stats", "async_status", "include_vars", "gather_facts",
        "setup_facts",
    }
)  # fmt: skip
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_KEEP_OUT = ("_ansible_", "invocation")  # Ansible's bookkeeping, not the module's result


def _builtin_module_file(name: str) -> bool:
    """Is ``name`` an ansible.builtin module? (A file check: ansible is not imported for it.)"""
    spec = importlib.util.find_spec("ansible")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(loc) / "modules" / f"{name}.py").is_file() for loc in spec.submodule_search_locations)


@functools.cache
def _loader() -> Any:
    from ansible.plugins.loader import init_plugin_loader, module_loader

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        init_plugin_loader()
    return module_loader


def fqcn_of(name: str) -> str | None:
    """The installed module's fully qualified name, or None (not installed, or not a module)."""
    if not _NAME.fullmatch(name) or name.split(".")[-1] in NOT_MODULES:
        return None
    from runbook.kinds.ansible_names import fqcn, is_ansible_module

    if is_ansible_module(name):  # found as files, where Ansible looks (no import of ansible)
        return fqcn(name)
    return _loaded_fqcn(name)


@functools.cache
def _loaded_fqcn(name: str) -> str | None:
    """What Ansible's own plugin loader resolves ``name`` to (ansible.legacy, routing)."""
    parts = name.split(".")
    if len(parts) == 2 or (len(parts) == 1 and not _builtin_module_file(name)):
        return None  # runbook's own family.name, or nothing Ansible ships
    if parts[-1] in NOT_MODULES:
        return None
    if importlib.util.find_spec("ansible") is None:
        return None
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            found = _loader().find_plugin_with_context(name)
    except Exception:  # a broken collection: not resolvable
        return None
    if not found.resolved or not found.resolved_fqcn:
        return None
    return str(found.resolved_fqcn)


@functools.cache
def resolve(name: str) -> type[StepKind] | None:
    """A step kind class for the Ansible module ``name`` (None: not an installed module)."""
    fqcn = fqcn_of(name)
    if fqcn is None:
        return None
    return type(
        f"AnsibleModule_{fqcn.replace('.', '_')}",
        (AnsibleModule,),
        {"name": name, "fqcn": fqcn, "description": f"Ansible module {fqcn} (through ansible-runner)"},
    )


def parse_free_form(text: str, fqcn: str = "") -> dict[str, Any]:
    """``name=nginx state=present`` as Ansible parses it for that module: k=v pairs, or, for the
    modules that take free text (command, shell, raw, script …), ``_raw_params``."""
    from ansible.parsing.mod_args import RAW_PARAM_MODULES
    from ansible.parsing.splitter import parse_kv

    return dict(parse_kv(text, check_raw=fqcn in RAW_PARAM_MODULES))


class AnsibleModule(StepKind):
    """An Ansible module (``fqcn``), one ansible-playbook process per batch."""

    name = "ansible.module"  # each resolved module is a subclass named after it
    fqcn: ClassVar[str] = ""
    description = "An installed Ansible module, run through ansible-runner"
    mutating = True
    needs_native_transport = False  # ansible-runner reaches the host through its connection plugin
    schema: ClassVar[dict[str, Any]] = {"type": "object", "description": "the module's own arguments (checked by Ansible)"}
    registers = {"(module result)": "everything the Ansible module returned (as Ansible's register holds it)"}

    def normalize(self, args: Any) -> dict[str, Any]:
        if isinstance(args, str):
            return parse_free_form(args, self.fqcn)
        return {} if args is None else args

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        check = ctx.dry_run
        secrets = sorted({s for s in leaves(args) if len(s) >= 3 and ctx.holds_secret(s)})
        params = {
            "module": self.fqcn,
            "args": args,
            "check": check,
            "diff": True,
            "no_log": bool(secrets),  # Ansible's events and results then hide the values
            "secrets": secrets,
            "become": ctx.become,
        }
        shown = f"{self.fqcn} " + json.dumps(args, sort_keys=True, default=str)[:500]
        got = yield Client(MODULES, params, changes=not check, batched=True)
        return (yield from outcome(got or {}, check, shown))


def outcome(got: dict[str, Any], check: bool, command: str) -> StepGen:
    """Map Ansible's per-host result to runbook's: changed / failed / skipped / unreachable."""
    status = got.get("status", "failed")
    res = dict(got.get("res") or {})
    data = {k: v for k, v in res.items() if not k.startswith(_KEEP_OUT)}
    # module_stdout/module_stderr: what a module that did not answer in JSON printed (a broken
    # interpreter, a login banner): the reason is there
    stdout = next((res[k] for k in ("stdout", "module_stdout") if isinstance(res.get(k), str) and res[k]), "")
    stderr = next((res[k] for k in ("stderr", "module_stderr") if isinstance(res.get(k), str) and res[k]), "")
    rc = res.get("rc") if isinstance(res.get("rc"), int) and not isinstance(res.get("rc"), bool) else None
    common = {"rc": rc, "stdout": stdout, "stderr": stderr, "data": data, "command": command}
    if status in ("failed", "unreachable"):
        msg = str(res.get("msg") or "").strip() or status
        if res.get("censored"):
            msg = f"{msg} (details hidden: no_log)"
        if stderr and stderr.strip() not in msg:
            msg = f"{msg}; stderr: {stderr.strip()[-1000:]}"
        if res.get("module_stdout") and str(res["module_stdout"]).strip() not in msg:
            msg = f"{msg}; module output: {str(res['module_stdout']).strip()[-1000:]}"
        if status == "unreachable":
            msg = f"unreachable: {msg}"
        return Outcome.failure(msg, **common)
    if status == "skipped":
        return Outcome(ok=True, skipped=True, msg=str(res.get("skip_reason") or res.get("msg") or "skipped"), **common)
    changed = status == "changed"
    msg = str(res.get("msg") or "")
    if changed and check:
        diffs = got.get("diffs") or []
        for diff in diffs or [""]:
            yield Planned(f"{command.split(' ', 1)[0]}: would change", diff)
        msg = "would change" + (f": {msg}" if msg else "")
    return Outcome(ok=True, changed=changed, msg=msg, **common)  # a plan's "changed": it would
