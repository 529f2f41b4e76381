"""What `runbook doc MODULE` says about a step kind, read from the kind itself: its description,
arguments (from its JSON Schema: type, default, required, description), what `register:` gives
(``registers``, plus the fields every kind registers), and its traits (mutates, undo, verify)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from runbook.kinds import base as kinds

_DEFAULT_IN_TEXT = re.compile(r"\(default:? ([^)]+)\)|\bdefault:? ([^;,)]+)")


@dataclass(frozen=True)
class Argument:
    name: str
    type: str
    required: bool
    default: str = ""
    description: str = ""


@dataclass(frozen=True)
class ModuleDoc:
    name: str
    description: str
    arguments: list[Argument]
    registers: dict[str, str]
    mutates: str  # "yes" | "no" | "yes, unless changes: false"
    undo: str
    verify: str
    free_form: str | None = None
    common_registers: dict[str, str] = field(default_factory=lambda: dict(kinds.COMMON_REGISTERS))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "arguments": [a.__dict__ for a in self.arguments],
            "registers": self.registers,
            "common_registers": self.common_registers,
            "mutates": self.mutates,
            "undo": self.undo,
            "verify": self.verify,
            "free_form": self.free_form,
        }


def type_of(schema: Any) -> str:
    """A JSON Schema as a short type: ``string``, ``integer | string``, ``one of: a, b``, ``list of string``."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return "one of: " + " | ".join(_text(v) for v in schema["enum"])
    if "const" in schema:
        return f"exactly {schema['const']!r}"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            parts: list[str] = []
            for sub in schema[key]:
                t = type_of(sub)
                if t not in parts:
                    parts.append(t)
            return " | ".join(parts)
    t = schema.get("type")
    names = [t] if isinstance(t, str) else list(t or [])
    if not names:
        return "any"
    out = []
    for n in names:
        if n == "array":
            items = schema.get("items")
            out.append(f"list of {type_of(items)}" if isinstance(items, dict) else "list")
        elif n == "object":
            out.append("mapping")
        else:
            out.append(n)
    return " | ".join(out)


def _default(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    if "default" in schema:
        return _text(schema["default"])
    m = _DEFAULT_IN_TEXT.search(str(schema.get("description", "")))
    return (m.group(1) or m.group(2)).strip() if m else ""


def _text(value: Any) -> str:
    """A value as YAML writes it (true, null, 5, text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _description(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    text = str(schema.get("description", ""))
    for key in ("oneOf", "anyOf"):
        for sub in schema.get(key, ()):
            if not text and isinstance(sub, dict) and sub.get("description"):
                text = str(sub["description"])
    return text


def module_doc(name: str) -> ModuleDoc | None:
    """The documentation of module ``name`` (None when there is no such module)."""
    cls = kinds.registry().get(name)
    if cls is None:
        return _other_name(name)
    kind = cls()
    schema = cls.schema if isinstance(cls.schema, dict) else {}
    required = set(schema.get("required", ()))
    props = schema.get("properties") or {}
    arguments = [
        Argument(k, type_of(v), k in required, _default(v), _description(v)) for k, v in props.items()
    ]
    if cls.raw_shell:
        mutates = "yes, unless changes: false (a read-only probe)"
    elif cls.asks_approval:
        mutates = "no (a human gate: asks for approval; a dry-run says it would ask)"
    elif cls.pure:
        mutates = "no (runs on the control machine, touches no host; runs in a dry-run too)"
    else:
        mutates = "yes" if cls.mutating else "no (read-only: runs in pre-flight and for real in a dry-run)"
    if not cls.mutating:
        undo = "nothing to undo"
    elif kind.can_undo:
        undo = "yes, from the snapshot it takes before changing anything"
    elif cls.no_undo_needed:
        undo = f"none needed ({cls.no_undo_needed})"
    else:
        undo = "no: give the step an `undo:` (or `undo: none`), else a rollback reports it as NOT undone"
    verify = (
        "yes: a rollback checks the restored state"
        if kind.can_verify_undo
        else ("-" if not cls.mutating or not kind.can_undo else "no")
    )
    return ModuleDoc(
        name=name,
        description=cls.description,
        arguments=arguments,
        registers=dict(cls.registers),
        mutates=mutates,
        undo=undo,
        verify=verify,
        free_form=cls.free_form,
    )


def _other_name(name: str) -> ModuleDoc | None:
    """An Ansible name: of a runbook module (its doc, under that name) or an installed Ansible
    module (run through ansible-runner: `ansible-doc` has its arguments)."""
    from dataclasses import replace

    kind = kinds.get(name)
    if kind is None:
        return None
    native = kinds.native_name(name, kind)
    if native != name:
        doc = module_doc(native)
        return replace(doc, name=name, description=f"{kind.description}. {doc.description}") if doc else None
    fqcn = getattr(kind, "fqcn", name)
    return ModuleDoc(
        name=name,
        description=f"{kind.description}: its arguments are Ansible's (`ansible-doc {fqcn}`); one "
        "ansible-playbook for every host of the batch; check mode with --diff in a plan.",
        arguments=[],
        registers=dict(kind.registers),
        mutates="yes (Ansible's check mode in a plan: nothing changes)",
        undo="no: give the step an `undo:` (or `undo: none`), else a rollback reports it as NOT undone",
        verify="no",
    )


def module_names() -> list[str]:
    return sorted(kinds.registry())


def generated_example(doc: ModuleDoc) -> dict[str, Any]:
    """A step using the module with its required arguments (placeholders from their types)."""
    args: dict[str, Any] = {}
    for a in doc.arguments:
        if not a.required:
            continue
        if a.type.startswith("one of: "):
            args[a.name] = a.type[len("one of: ") :].split(" | ")[0]
        elif a.type.startswith(("integer", "number")):
            args[a.name] = 1
        elif a.type.startswith("boolean"):
            args[a.name] = True
        elif a.type.startswith("list"):
            args[a.name] = []
        elif a.type.startswith("mapping"):
            args[a.name] = {}
        else:
            args[a.name] = f"<{a.name}>"
    return {"name": f"Example {doc.name} step", doc.name: args}
