"""Module arguments are checked without jsonschema when the answer is plain (runbook.kinds.base.
decide): whatever it decides, jsonschema (the finite-number draft 2020-12 validator every other
check uses) decides the same, for every built-in kind's schema and a spread of values; what it
cannot judge it leaves to jsonschema."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from runbook.kinds import base as kinds
from runbook.render.runtime import Anything

VALUES: list[Any] = [
    "", "x", "0644", "GET", "get", "link", "directory", "always", "200", "2xx", "abc def", "-1",
    0, 1, -1, 3, 200, 65536, 1.5, 1.0, -0.5, 1e400, 10**400, True, False, None,
    [], ["a"], [""], [1], ["a", 2], [True], [["a"]], [None],
    {}, {"a": "b"}, {"a": 1}, {"a": True}, {"a": None}, {"a": ["b"]}, {"a": {"b": 1}},
]  # fmt: skip


class _Str(str):
    """A text that is not a plain str (as YAML values carry their position)."""


def _property_schemas() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, cls in sorted(kinds.registry().items()):
        for key, sub in (cls.schema.get("properties") or {}).items():
            if isinstance(sub, dict):
                out.append((f"{name}.{key}", sub))
    return out


def _candidates(schema: dict[str, Any]) -> list[Any]:
    extra = [*schema.get("enum", ()), *([schema["const"]] if "const" in schema else ())]
    return [*VALUES, *extra, *(_Str(v) for v in extra if isinstance(v, str))]


def _jsonschema_valid(schema: dict[str, Any], value: Any) -> bool:
    return not any(True for _ in kinds.validator_for(schema).iter_errors(value))


def _agrees(schema: dict[str, Any], value: Any) -> str | None:
    decided = kinds.decide(schema, value)
    if decided is None:
        return None
    truth = _jsonschema_valid(schema, value)
    return None if decided == truth else f"decide says {decided}, jsonschema {truth}: {value!r} against {schema}"


def test_every_decision_on_an_argument_value_is_jsonschemas() -> None:
    wrong, decided, total = [], 0, 0
    for where, schema in _property_schemas():
        for value in _candidates(schema):
            total += 1
            if kinds.decide(schema, value) is not None:
                decided += 1
            problem = _agrees(schema, value)
            if problem:
                wrong.append(f"{where}: {problem}")
    assert not wrong, "\n".join(wrong[:20])
    assert decided > total // 2  # the common cases are decided here, not by jsonschema


def test_every_decision_on_a_steps_arguments_is_jsonschemas() -> None:
    """Whole argument mappings: nothing, the required ones, each argument alone and with the
    required ones, and pairs of alternatives (cmd and argv, src and content)."""
    wrong, checked = [], 0
    for name, cls in sorted(kinds.registry().items()):
        schema = cls.schema
        props = [k for k, v in (schema.get("properties") or {}).items() if isinstance(v, dict)]
        required = {r: "x" for r in schema.get("required", ())}
        mappings: list[dict[str, Any]] = [{}, dict(required), {**required, "no_such_argument": 1}]
        for key in props:
            for value in _candidates(schema["properties"][key])[::3]:
                mappings += [{key: value}, {**required, key: value}]
        for a, b in itertools.combinations(props[:8], 2):
            mappings.append({**required, a: "x", b: "y"})
        for args in mappings:
            checked += 1
            problem = _agrees(schema, args)
            if problem:
                wrong.append(f"{name}: {problem}")
    assert not wrong, "\n".join(wrong[:20])
    assert checked > 1000


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "integer"}, 2.0),  # an integer to JSON Schema, not to Python
        ({"type": "number"}, float("inf")),  # the finite-number rule words its own error
        ({"type": "string", "format": "uri"}, "x"),  # a keyword decide does not know
        ({"enum": [True, 0.5]}, 1),  # jsonschema's equality of booleans and numbers
        ({"type": "string"}, Anything()),  # known only at run time
        ({"type": "object", "patternProperties": {"^a": {}}}, {"a": 1}),
    ],
)
def test_what_it_cannot_judge_is_left_to_jsonschema(schema: dict[str, Any], value: Any) -> None:
    assert kinds.decide(schema, value) is None


def test_a_plain_check_is_decided_both_ways() -> None:
    file_schema = kinds.get("file").schema
    assert kinds.decide(file_schema, {"path": "/srv", "state": "directory", "mode": "0755"}) is True
    assert kinds.decide(file_schema, {"path": "/srv", "state": "dir"}) is False
    assert kinds.decide(file_schema, {"path": "/srv", "state": "link"}) is False  # link needs src
    assert kinds.decide(file_schema, {"path": "/srv", "state": "link", "src": "/a"}) is True
    command = kinds.get("command").schema
    assert kinds.decide(command, {"cmd": "ls", "argv": ["ls"]}) is False  # one of them, not both
    assert kinds.first_error(command, {"cmd": "ls", "argv": ["ls"]}) is not None
    assert kinds.first_error(command, {"cmd": "ls"}) is None
