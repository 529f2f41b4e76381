"""Control kinds the engine interprets itself: approve, set_fact, debug, pause."""

from __future__ import annotations

from typing import Any

from runbook.plan.steps.base import Outcome, StepContext, StepGen, StepKind, register


@register
class Approve(StepKind):
    name = "approve"
    description = "A human gate: typed confirmation at the terminal, or --yes; recorded in the audit."
    free_form = "prompt"
    schema = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string"},
            "confirm": {"type": "string", "description": "text the operator must type (default: yes)"},
        },
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:  # the engine handles approve
        return Outcome.success("approved")
        yield


@register
class SetFact(StepKind):
    name = "set_fact"
    description = "Set host variables for the following steps."
    schema = {"type": "object", "minProperties": 1}

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        return Outcome.success("", data={"ansible_facts": dict(args)})
        yield


@register
class Debug(StepKind):
    name = "debug"
    description = "Print a message (or a variable's value)."
    free_form = "msg"
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
