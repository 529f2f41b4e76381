"""The task's variables as a runbook step kind sees them: rendered by Ansible, on first use.

Ansible hands an action plugin its variables as written (``env_file: "{{ app_dir }}/app.env"``);
``runbook exec`` hands a kind rendered ones (runbook.render.templar.LazyVars). ``RenderedVars``
renders each variable with the task's own Ansible templar the first time it is read (so Ansible's
precedence, filters, lookups, trust rules and undefined checks apply, and a variable nobody reads is
never rendered), and returns plain dicts/lists: a template file rendered by the kind (``template``,
``compose.budget``) sees the values the task would see in ``{{ ... }}``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def plain(value: Any) -> Any:
    """Ansible's tagged/lazy dicts, lists and scalars as plain ones (other mappings as they are)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for t in (str, int, float):
        if isinstance(value, t):
            return t(value)
    return value


class RenderedVars(Mapping[str, Any]):
    def __init__(self, task_vars: Mapping[str, Any], templar: Any):
        self._vars = {k: v for k, v in task_vars.items() if not k.startswith("ansible_facts")}
        self._templar = templar
        self._done: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._done:
            return self._done[key]
        raw = self._vars[key]
        from ansible.errors import AnsibleUndefinedVariable

        try:
            value = plain(self._templar.template(raw))
        except AnsibleUndefinedVariable:
            raise KeyError(key) from None  # Jinja's undefined: the kind's template names it
        self._done[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def __contains__(self, key: object) -> bool:
        return key in self._vars
