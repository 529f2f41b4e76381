"""Ansible task syntax the engine runs itself: ``block`` (block/rescue/always, run by
runbook.execute.blocks), ``meta`` (flush_handlers, noop), and the step of an installed Ansible
module (runbook.kinds.ansible_names) when runbook has no native kind of that name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register

META_ACTIONS = ("flush_handlers", "noop")


@register
class Block(StepKind):
    name = "block"
    runs_nested_steps = True
    registers = {}
    description = "Steps run together (Ansible's block), with rescue: and always: steps."
    schema = {"type": "object", "additionalProperties": False}

    def normalize(self, args: Any) -> dict[str, Any]:
        return {}  # the steps are the Step's block/rescue/always, not arguments

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:  # pragma: no cover - engine runs it
        return Outcome.failure("a block is run by the engine")
        yield


@register
class Meta(StepKind):
    name = "meta"
    registers = {}
    description = "meta: flush_handlers runs the notified handlers now; meta: noop does nothing."
    free_form = "action"
    schema = {
        "type": "object",
        "properties": {"action": {"enum": list(META_ACTIONS)}},
        "required": ["action"],
        "additionalProperties": False,
    }

    def flushes_handlers(self, args: Any) -> bool:
        action = args.get("action") if isinstance(args, Mapping) else args
        return action == "flush_handlers"

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        return Outcome.success("")  # flush_handlers is done by the step runner around it
        yield


class AnsibleModule(StepKind):
    """An installed Ansible module runbook has no native kind for. Its arguments are Ansible's (a
    mapping, or the k=v / free-form text Ansible parses), checked by Ansible when it runs."""

    registers = {}
    mutating = True
    result_known_in_plan = False
    description = "An Ansible module, run through ansible-runner."
    schema = {"type": "object"}

    def __init__(self, module: str = "") -> None:
        self.name = module  # type: ignore[misc]

    def normalize(self, args: Any) -> dict[str, Any]:
        if isinstance(args, str):
            return {"_raw_params": args}
        return {} if args is None else args

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        if ctx.dry_run:
            return Outcome.success(f"would run Ansible module {self.name}", changed=True)
        return Outcome.failure(
            f"Ansible module {self.name}: this build of runbook plans Ansible-module steps but does not "
            "run them (the ansible-runner path for any module is separate work)"
        )
        yield
