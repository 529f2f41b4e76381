"""Control kinds the engine interprets itself: approve, set_fact, debug, pause."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register


@register
class Approve(StepKind):
    name = "approve"
    registers = {}
    description = (
        "A human gate: typed confirmation at the terminal, or --yes; recorded in the audit with who "
        "approved. `approvers: N` needs N distinct people, `approvers: [alice, carol]` each of them."
    )
    free_form = "prompt"
    pure = True
    asks_approval = True
    schema = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string"},
            "confirm": {"type": "string", "description": "text the operator must type (default: yes)"},
            "approvers": {
                "description": "how many distinct people must approve (default 1), or the named people who "
                "must each approve (--approver NAME, RUNBOOK_APPROVER, or typed at the prompt)",
                "oneOf": [
                    {"type": "integer", "minimum": 1, "maximum": 100},
                    {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "pattern": "\\S"},
                        "minItems": 1,
                        "maxItems": 100,
                        "uniqueItems": True,
                    },
                ],
            },
        },
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:  # the engine handles approve
        return Outcome.success("approved")
        yield


@register
class SetFact(StepKind):
    name = "set_fact"
    needs_native_transport = False
    registers = {
        "ansible_facts": "the variables set (they are also set directly, as in Ansible)",
    }
    description = "Set host variables for the following steps."
    schema = {"type": "object", "minProperties": 1}
    pure = True

    def defines(self, args: Any) -> tuple[str, ...]:
        return tuple(str(k) for k in args) if isinstance(args, Mapping) else ()

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        return Outcome.success("", data={"ansible_facts": dict(args)})
        yield


@register
class Debug(StepKind):
    name = "debug"
    needs_native_transport = False
    registers = {}
    description = "Print a message (or a variable's value)."
    free_form = "msg"
    pure = True
    schema = {
        "type": "object",
        "properties": {"msg": {}, "var": {"type": "string"}},
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        if "var" in args:
            value = ctx.vars.get(args["var"], f"VARIABLE IS NOT DEFINED: {args['var']}")
            return Outcome.success(f"{args['var']}: {value}")
        return Outcome.success(str(args.get("msg", "Hello world!")))
        yield
