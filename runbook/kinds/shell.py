"""shell and command: run a command on the host.

Both change the host as far as runbook can tell (they are shown, not run, in a dry-run), unless the
step says ``changes: false`` — then it is a read-only probe that also runs in preflight and dry-run.
Neither can be undone from a snapshot; a step may give an explicit ``undo:`` command instead.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from runbook.actions import Run
from runbook.actions.commands import Command
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.model.lazyre import lazy_re

_COMMON = {
    "chdir": {"type": "string", "description": "working directory on the host"},
    "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
    "stdin": {"type": "string"},
    "creates": {"type": "string", "description": "skip if this path exists on the host"},
    "removes": {"type": "string", "description": "skip unless this path exists on the host"},
    "changes": {"type": "boolean", "description": "false: a read-only probe (runs in dry-run)"},
    "executable": {"type": "string", "description": "shell to use (shell module), default /bin/sh"},
}


# Ansible reads these key=value words out of a shell/command step's free-form text
# ("npm test chdir={{ app_directory }}": chdir is an argument, not part of the command).
_INLINE = lazy_re(
    r"(?:^|\s)(chdir|creates|removes|executable|stdin)=(\"[^\"]*\"|'[^']*'|(?:\{\{.*?\}\}|\S)+)(?=\s|$)"
)


def inline_args(args: Any) -> Any:
    """The free-form command with Ansible's inline ``chdir=``/``creates=``/... words as arguments."""
    if not isinstance(args, dict) or not isinstance(args.get("cmd"), str) or "=" not in args["cmd"]:
        return args
    found: dict[str, str] = {}

    def take(m: re.Match[str]) -> str:
        value = m.group(2)
        if value[:1] in "\"'" and value[-1:] == value[:1]:
            value = value[1:-1]
        found[m.group(1)] = value
        return ""

    cmd = _INLINE.sub(take, args["cmd"]).strip()
    if not found or not cmd:
        return args
    return {**{k: v for k, v in found.items() if k not in args}, **args, "cmd": cmd}


def _run(command: Command, args: dict[str, Any], ctx: StepContext) -> StepGen:
    from runbook.actions import Stat

    if args.get("creates"):
        st = yield Stat(args["creates"])
        if st.exists:
            return Outcome(ok=True, skipped=True, msg=f"{args['creates']} exists")
    if args.get("removes"):
        st = yield Stat(args["removes"])
        if not st.exists:
            return Outcome(ok=True, skipped=True, msg=f"{args['removes']} does not exist")
    res = yield Run(command, changes=args.get("changes", True))
    return Outcome(
        ok=res.ok,
        changed=bool(args.get("changes", True)),
        rc=res.rc,
        stdout=res.stdout,
        stderr=res.stderr,
        msg=("timed out" if res.timed_out else "" if res.ok else f"non-zero return code {res.rc}"),
        command=command.display(),
    )


def _kw(args: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {
        "env": {str(k): str(v) for k, v in (args.get("env") or {}).items()},
        "cwd": args.get("chdir"),
        "stdin": args["stdin"].encode() if args.get("stdin") is not None else None,
        "become": ctx.become,
    }


@register
class Shell(StepKind):
    name = "shell"
    registers = {}
    description = "Run shell text on the host (/bin/sh -c)."
    mutating = True
    free_form = "cmd"
    raw_shell = True

    def normalize(self, args: Any) -> dict[str, Any]:
        return inline_args(super().normalize(args))

    shell_args = ("cmd",)
    schema = {
        "type": "object",
        "properties": {"cmd": {"type": "string", "minLength": 1}, **_COMMON},
        "required": ["cmd"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        script = args["cmd"]
        if args.get("executable"):
            cmd = Command.exec([args["executable"], "-c", script], **_kw(args, ctx))
        else:
            cmd = Command.shell(script, **_kw(args, ctx))
        return (yield from _run(cmd, args, ctx))


@register
class CommandKind(StepKind):
    name = "command"
    registers = {}
    description = (
        "Run a program with arguments, no shell (argv given as a list or a string split like a shell)."
    )
    mutating = True
    free_form = "cmd"
    raw_shell = True

    def normalize(self, args: Any) -> dict[str, Any]:
        return inline_args(super().normalize(args))

    shell_args = ("cmd",)  # split like a shell: an unquoted value with spaces becomes more arguments
    schema = {
        "type": "object",
        "properties": {
            "cmd": {"type": "string", "minLength": 1},
            "argv": {"type": "array", "items": {"type": ["string", "number"]}, "minItems": 1},
            **{k: v for k, v in _COMMON.items() if k != "executable"},
        },
        "oneOf": [{"required": ["cmd"]}, {"required": ["argv"]}],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        argv = [str(a) for a in args["argv"]] if args.get("argv") else shlex.split(args["cmd"])
        cmd = Command.exec(argv, **_kw(args, ctx))
        return (yield from _run(cmd, args, ctx))
