"""Compile a runbook into an ordinary Ansible playbook that runs its steps with runbook.core.step."""

from runbook.compile.playbook import compile_runbook, to_yaml

__all__ = ["compile_runbook", "to_yaml"]
