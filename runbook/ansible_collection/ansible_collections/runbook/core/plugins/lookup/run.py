"""Lookup runbook.core.run: what runbook's ``run`` variable holds under Ansible (``run.id``)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible_collections.runbook.core.plugins.plugin_utils.runid import run_id

DOCUMENTATION = r"""
name: run
short_description: The id of this ansible-playbook run, as runbook's run.id
description:
  - C(id) is C(runbook_run_id) if set, else C($RUNBOOK_RUN_ID), else one derived from the
    ansible-playbook process (its start time and PID), the same in every task of the run and in the
    C(runbook.core.audit) callback, different for every run.
  - The compiled playbooks (C(runbook compile)) define C(run.id) with it.
version_added: "0.1.0"
options:
  _terms:
    description: What to return; only C(id).
    type: list
    elements: str
author:
  - runbook maintainers
"""

EXAMPLES = r"""
- ansible.builtin.debug: {msg: "{{ lookup('runbook.core.run', 'id') }}"}
"""

RETURN = r"""
_raw:
  description: The run id.
  type: list
  elements: str
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
        out = []
        for term in terms or ["id"]:
            if term != "id":
                raise AnsibleError(f"runbook.core.run: unknown term {term!r} (only 'id')")
            out.append(run_id(variables))
        return out
