"""Ansible task syntax the engine runs itself: ``block`` (block/rescue/always, run by
runbook.execute.blocks) and ``meta`` (flush_handlers, noop). An installed Ansible module's step is
runbook.kinds.ansible_module."""

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

