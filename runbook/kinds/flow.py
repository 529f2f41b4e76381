"""wait, assert and fail: control the flow of a runbook.

wait polls a read-only probe (a port, a path, a URL) with Sleep between tries until it holds or the
timeout passes; ``wait: {seconds: 5}`` just pauses. In a dry-run a condition that does not hold yet
is reported, not waited for (the steps that would make it hold did not run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from runbook.actions import Action, Http, Sleep, Stat
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.kinds.checks import PORT_SCHEMA, listeners_at, port_host
from runbook.kinds.filestate import StepFailed
from runbook.kinds.http import STATUS_SCHEMA, connection_problem, public_url, status_ok
from runbook.model.values import FALSE_WORDS, TRUE_WORDS

Probe = Callable[[], Generator[Action, Any, tuple[bool, str]]]
_STATES = {"port": ("started", "stopped"), "path": ("present", "absent"), "url": ()}


@register
class Wait(StepKind):
    name = "wait"
    registers = {
        "tries": "how many checks it took",
        "elapsed": "seconds waited",
    }
    description = "Pause, or wait until a port listens/stops, a path appears/goes, or a URL answers."
    schema = {
        "type": "object",
        "properties": {
            "seconds": {"type": "number", "minimum": 0},
            "port": PORT_SCHEMA,
            "host": {
                "type": "string",
                "description": "for port: IP address or localhost (default 127.0.0.1)",
            },
            "path": {"type": "string", "minLength": 1},
            "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
            "status": STATUS_SCHEMA,
            "state": {"enum": ["started", "stopped", "present", "absent"]},
            "timeout": {"type": "number", "minimum": 0, "description": "seconds (default 300)"},
            "sleep": {"type": "number", "exclusiveMinimum": 0, "description": "between tries (default 1)"},
            "delay": {"type": "number", "minimum": 0, "description": "before the first try"},
            "validate_certs": {"type": "boolean"},
        },
        "oneOf": [
            {"required": ["seconds"]},
            {"required": ["port"]},
            {"required": ["path"]},
            {"required": ["url"]},
        ],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        if args.get("seconds") is not None:
            yield Sleep(float(args["seconds"]))
            return Outcome.success(f"waited {args['seconds']}s")
        target = next(k for k in ("port", "path", "url") if args.get(k) is not None)
        state = args.get("state") or (_STATES[target][0] if _STATES[target] else None)
        if state is not None and state not in _STATES[target]:
            allowed = " or ".join(_STATES[target]) or "nothing"
            return Outcome.failure(f"wait for a {target}: state must be {allowed}, not {state!r}")
        what, probe = self._probe(target, state, args)
        timeout = float(args["timeout"]) if args.get("timeout") is not None else 300.0
        pause = float(args.get("sleep") or 1.0)
        if args.get("delay"):
            yield Sleep(float(args["delay"]))
        start = time.monotonic()
        max_tries = int(timeout / pause) + 2  # bounds the loop even where Sleep is skipped
        tries = 0
        while True:
            tries += 1
            try:
                done, detail = yield from probe()
            except StepFailed as exc:
                return Outcome.failure(str(exc))
            elapsed = time.monotonic() - start
            data = {"tries": tries, "elapsed": round(elapsed, 3)}
            if done:
                return Outcome.success(f"{what} ({detail}, after {tries} tries)", data=data)
            if ctx.dry_run:
                return Outcome.success(
                    f"dry-run: not yet {what} ({detail}); would wait up to {timeout:g}s", data=data
                )
            if elapsed >= timeout or tries >= max_tries:
                return Outcome.failure(
                    f"timed out after {timeout:g}s waiting until {what} (last: {detail})", data=data
                )
            yield Sleep(max(0.0, min(pause, timeout - elapsed)))

    def _probe(self, target: str, state: str | None, args: dict[str, Any]) -> tuple[str, Probe]:
        if target == "port":
            host, port = port_host(args), int(args["port"])
            want = state == "started"

            def port_probe() -> Generator[Action, Any, tuple[bool, str]]:
                hits, _ = yield from listeners_at(host, port, "wait:")
                return bool(hits) == want, ("listening: " + ", ".join(hits)) if hits else "not listening"

            return f"{host}:{port} is {'listening' if want else 'closed'}", port_probe
        if target == "path":
            path, want = str(args["path"]), state == "present"

            def path_probe() -> Generator[Action, Any, tuple[bool, str]]:
                st = yield Stat(path)
                return st.exists == want, "exists" if st.exists else "absent"

            return f"{path} is {state}", path_probe
        url, spec = str(args["url"]), args.get("status")
        kw = {"validate_certs": bool(args.get("validate_certs", True))} if _has_validate() else {}

        def url_probe() -> Generator[Action, Any, tuple[bool, str]]:
            timeout = min(10.0, float(args.get("timeout") or 10.0)) or 10.0
            resp = yield Http("GET", url, timeout=timeout, **kw)
            if resp.status == 0:
                return False, connection_problem(resp.error or "no response", timeout)
            return status_ok(resp.status, spec), f"status {resp.status}"

        return f"{public_url(url)} answers {spec if spec is not None else '2xx'}", url_probe


def _has_validate() -> bool:
    import dataclasses

    return "validate_certs" in {f.name for f in dataclasses.fields(Http)}


_TRUE = TRUE_WORDS
_FALSE = FALSE_WORDS | {"", "none", "null"}


def truth(value: Any) -> bool:
    """The truth of an already-rendered condition. Text that is not a truth value is an error."""
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(value)
    if value is None:
        return False
    return bool(value)


@register
class Assert(StepKind):
    name = "assert"
    needs_native_transport = False
    registers = {
        "failed_assertion": "index of the first condition that was false",
    }
    description = "Fail unless every condition in `that` is true (bare expressions, as in `when:`)."
    pure = True
    conditions = ("that",)
    schema = {
        "type": "object",
        "properties": {
            "that": {"description": "a condition or a list of them, bare expressions as in `when:`, e.g. \"x.stdout == 'y'\""},
            "fail_msg": {"type": "string"},
            "msg": {"type": "string", "description": "alias of fail_msg"},
            "success_msg": {"type": "string"},
            "quiet": {"type": "boolean"},
        },
        "required": ["that"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        that = args["that"] if isinstance(args["that"], list) else [args["that"]]
        for i, value in enumerate(that):
            try:
                ok = truth(value)
            except ValueError:
                return Outcome.failure(
                    f"assert: that[{i}] is the text {value!r}, not true or false; write the condition as "
                    'a Jinja expression in {{ }}, e.g. "{{ x > 1 }}"'
                )
            if not ok:
                msg = args.get("fail_msg") or args.get("msg") or f"assertion failed: that[{i}] is {value!r}"
                return Outcome.failure(str(msg), data={"failed_assertion": i})
        msg = "" if args.get("quiet") else str(args.get("success_msg") or "all assertions passed")
        return Outcome.success(msg)
        yield  # a generator, like every step kind


@register
class Fail(StepKind):
    name = "fail"
    needs_native_transport = False
    registers = {}
    description = "Stop here with a message (use with when:)."
    pure = True
    free_form = "msg"
    schema = {"type": "object", "properties": {"msg": {"type": "string"}}, "additionalProperties": False}

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        return Outcome.failure(str(args.get("msg") or "failed as requested"))
        yield
