"""The JSON Schema of the runbook format (for editors and `runbook schema`)."""

from __future__ import annotations

from typing import Any

from runbook.kinds import base as kinds
from runbook.model.ansible_tasks import TASK_KEYWORDS
from runbook.model.runbook import RUNBOOK_KEYS, STEP_KEYWORDS
from runbook.model.step import CONDITION_KEYWORDS
from runbook.model.values import VARIABLE_NAME_PATTERN

_COND = {
    "oneOf": [
        {"type": "string"},
        {"type": "boolean"},
        {"type": "array", "items": {"type": ["string", "boolean"]}},
    ]
}
_NUM = {"type": ["number", "string"]}
TEMPLATE = {"type": "string", "pattern": r"\{\{|\{%", "description": "a Jinja2 template, rendered per host"}


def templatable(schema: Any) -> Any:
    """A module's argument schema as an editor must see it: wherever the value is not free text
    (a number, a boolean, an enum, a patterned string, a list or mapping), a ``{{ template }}``
    string is accepted too — it is rendered per host and checked against the real schema then."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: templatable(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = templatable(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = templatable(out["additionalProperties"])
    t = out.get("type")
    types = {t} if isinstance(t, str) else set(t or ())
    strict = (types and "string" not in types) or any(
        k in out for k in ("enum", "const", "pattern", "oneOf", "anyOf", "format")
    )
    return {"anyOf": [out, TEMPLATE]} if strict else out


def json_schema() -> dict[str, Any]:
    reg = kinds.registry()
    keywords: dict[str, Any] = {
        "name": {"type": "string"},
        **dict.fromkeys(CONDITION_KEYWORDS, _COND),
        "register": {"type": "string", "pattern": VARIABLE_NAME_PATTERN},
        "loop": {"type": ["array", "string"]},
        "loop_control": {"type": "object", "properties": {"loop_var": {"type": "string"}, "label": {"type": "string"}}},
        "retries": _NUM, "delay": _NUM, "backoff": _NUM, "timeout": _NUM,
        "tags": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "become": {"type": ["boolean", "string"]}, "become_user": {"type": "string"},
        "become_method": {"type": "string", "examples": ["sudo", "su"]}, "become_flags": {"type": "string"},
        "no_log": {"type": ["boolean", "string"]}, "ignore_errors": {"type": ["boolean", "string"]},
        "run_once": {"type": ["boolean", "string"]}, "changes": {"type": ["boolean", "string"]},
        "delegate_to": {"type": "string"}, "vars": {"type": "object"},
        "undo": {"oneOf": [
            {"$ref": "#/$defs/step"},
            {"enum": ["none", False], "description": "the step needs no undo (rollback says so, exit 1)"},
            {"type": "object", "properties": {"none": {"type": "string", "minLength": 1}},
             "required": ["none"], "additionalProperties": False,
             "description": "the step needs no undo, and why: {none: \"idempotent cache warm\"}"},
        ]},
        "fallback": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
        "notify": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "listen": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "environment": {"type": ["object", "string"]}, "check_mode": {"type": "boolean"},
        # Ansible's spellings, read as loop: / the module's arguments (runbook.model.ansible_tasks)
        **{k: {"description": desc} for k, desc in TASK_KEYWORDS.items()},
        "args": {"type": "object", "description": TASK_KEYWORDS["args"]},
    }  # fmt: skip
    for k, desc in STEP_KEYWORDS.items():
        keywords.setdefault(k, {})
        keywords[k] = {**keywords[k], "description": desc}
    variants = []
    step_list = {"type": "array", "items": {"$ref": "#/$defs/step"}}
    for name, cls in sorted(reg.items()):
        if cls.runs_nested_steps:  # Ansible's block: its steps, not arguments
            variants.append({
                "type": "object", "description": cls.description,
                "properties": {**keywords, "block": {**step_list, "minItems": 1}, "rescue": step_list,
                               "always": step_list},
                "required": ["block"], "additionalProperties": False,
            })  # fmt: skip
            continue
        arg_schema = dict(cls.schema)
        if isinstance(arg_schema.get("properties"), dict):  # the mapping itself stays a mapping
            arg_schema["properties"] = {k: templatable(v) for k, v in arg_schema["properties"].items()}
        if cls.free_form:
            arg_schema = {"oneOf": [{"type": "string"}, arg_schema]}
        registers = {**kinds.COMMON_REGISTERS, **cls.registers}
        own = "; ".join(f"{k}: {v}" for k, v in cls.registers.items())
        variants.append(
            {
                "type": "object",
                "description": cls.description + (f" `register:` gives {own}." if own else ""),
                "x-registers": registers,
                "properties": {**keywords, name: arg_schema},
                "required": [name],
                "additionalProperties": False,
            }
        )
    steps = {"type": "array", "items": {"$ref": "#/$defs/step"}}
    props: dict[str, Any] = {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "hosts": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "serial": {
            "oneOf": [
                {"type": ["integer", "string"]},
                {"type": "array", "items": {"type": ["integer", "string"]}},
            ]
        },
        "max_fail_percentage": {"type": "number", "minimum": 0, "maximum": 100},
        "forks": {"type": "integer", "minimum": 1},
        "lock": {"type": ["boolean", "string"]},
        "window": {
            "type": "object",
            "properties": {
                "start": {"type": "string"},
                "end": {"type": "string"},
                "tz": {"type": "string"},
                "days": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["start", "end"],
        },
        "vars": {"type": "object"},
        "defaults": {"type": "object"},
        "vars_files": {"type": "array", "items": {"type": "string"}},
        "secrets": {"type": "array", "items": {"type": "string", "pattern": VARIABLE_NAME_PATTERN}},
        "preflight": steps,
        "steps": steps,
        "rollback": {"oneOf": [{"enum": ["auto", "none"]}, steps]},
        "rollback_scope": {"enum": ["host", "all"]},
        "always": steps,
        "handlers": steps,
        "tags": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "become": {"type": "boolean"},
        "become_user": {"type": "string"},
        "become_method": {"enum": ["sudo", "su"]},
        "become_flags": {"type": "string"},
        "timeout": {"type": "number"},
    }
    for k, desc in RUNBOOK_KEYS.items():
        props.setdefault(k, {})
        props[k] = {**props[k], "description": desc}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://runbook.dev/schema/runbook.json",
        "title": "runbook",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "$defs": {"step": {"oneOf": variants}},
    }
