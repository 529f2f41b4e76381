"""Ansible's names for runbook's own modules: ``ansible.builtin.shell``, ``command``, ``copy``,
``template``, ``file``, ``uri``, ``wait_for``, ``debug``, ``assert``, ``fail``, ``set_fact``, ``pause``
(and the short names ``uri``, ``wait_for``, ``pause``) run on runbook's fast native path, with
Ansible's argument names where they differ (``uri: {status_code}`` -> ``http.request: {expect:
{status}}``, ``file: {dest}`` -> ``file: {path}`` …). An argument the mapping does not support is an
error that says so (run the real Ansible module through ``ansible.legacy.NAME`` if you need it).

Each alias is a normal step kind: its ``native`` names the kind it becomes, its schema is that
kind's, and the translation (``translate``) is idempotent (arguments may be normalised twice)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from runbook.errors import RenderError
from runbook.kinds import base
from runbook.kinds.base import StepContext, StepGen, StepKind, register_alias

Translate = Callable[[dict[str, Any]], dict[str, Any]]


class Alias(StepKind):
    """An Ansible module name for a runbook kind (``native``)."""

    native: ClassVar[str] = ""
    # Ansible argument -> runbook argument (None: translated by ``special``)
    renames: ClassVar[dict[str, str]] = {}
    free_key: ClassVar[str | None] = None  # where a free-form string goes (shell: cmd)

    @classmethod
    def target(cls) -> StepKind:
        kind = base.get(cls.native)
        assert kind is not None, cls.native
        return kind

    def __init__(self) -> None:
        kind = self.target()
        self._kind = kind
        self.mutating = kind.mutating  # type: ignore[misc]
        self.schema = kind.schema  # type: ignore[misc]
        self.shell_args = kind.shell_args  # type: ignore[misc]
        self.registers = kind.registers  # type: ignore[misc]
        self.no_undo_needed = kind.no_undo_needed  # type: ignore[misc]
        for trait in ("pure", "asks_approval", "raw_shell", "runs_nested_steps", "conditions",
                      "result_known_in_plan", "needs_native_transport"):  # fmt: skip
            if hasattr(kind, trait):
                setattr(self, trait, getattr(kind, trait))

    def defines(self, args: Any) -> tuple[str, ...]:
        return self._kind.defines(args)

    def check_for_host(self, args: Any, check: Any) -> None:
        return self._kind.check_for_host(args, check)

    def flushes_handlers(self, args: Any) -> bool:
        return self._kind.flushes_handlers(args)

    def normalize(self, args: Any) -> dict[str, Any]:
        if isinstance(args, str) and self.free_key:
            args = {self.free_key: args}
        elif isinstance(args, str):  # Ansible's k=v form: `wait_for: host=web1 port=80`
            from runbook.kinds.ansible_module import parse_free_form

            args = parse_free_form(args)
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return args
        out: dict[str, Any] = {}
        native = set((self.schema.get("properties") or {}).keys())
        open_ended = self.schema.get("additionalProperties", True) is not False
        unsupported = []
        for key, value in args.items():
            key = str(key)
            if key in self.renames:
                out[self.renames[key]] = value
            elif key == "_raw_params" and self.free_key:
                out[self.free_key] = value
            elif key in native or open_ended:
                out[key] = value
            else:
                unsupported.append(key)
        if unsupported:
            raise RenderError(
                f"{self.name}: argument(s) {', '.join(sorted(unsupported))} not supported by runbook's "
                f"{self.native} (which this name maps to)",
                hint=f"arguments it takes: {', '.join(sorted(native | set(self.renames)))}; for the "
                f"Ansible module itself write ansible.legacy.{self.name.rsplit('.', 1)[-1]}",
            )
        return self.special(out)

    def special(self, args: dict[str, Any]) -> dict[str, Any]:
        return args

    def mutates(self, args: Any) -> bool:
        try:
            return self._kind.mutates(self.normalize(args))
        except RenderError:
            return self._kind.mutating

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        return (yield from self._kind.run(args, ctx))

    def undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        return (yield from self._kind.undo(args, snapshot, ctx))

    def verify_undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        return (yield from self._kind.verify_undo(args, snapshot, ctx))

    @property
    def can_undo(self) -> bool:
        return self._kind.can_undo

    @property
    def can_verify_undo(self) -> bool:
        return self._kind.can_verify_undo

    def needed_records(self, snapshot: Any) -> list[str]:
        return self._kind.needed_records(snapshot)

    def undo_target(self, args: dict[str, Any], snapshot: Any) -> str | None:
        return self._kind.undo_target(args, snapshot)


def alias(name: str, native: str, *, renames: dict[str, str] | None = None, free_key: str | None = None,
          special: Translate | None = None, short: bool = False) -> None:  # fmt: skip
    """Register ``ansible.builtin.NAME`` (and the short ``NAME`` if asked) for ``native``."""
    names = [f"ansible.builtin.{name}"] + ([name] if short else [])
    for n in names:
        attrs: dict[str, Any] = {
            "name": n, "native": native, "renames": renames or {}, "free_key": free_key,
            "description": f"Ansible's {name}, on runbook's native {native}",
        }  # fmt: skip
        if special is not None:
            attrs["special"] = lambda self, args, _f=special: _f(args)
        register_alias(type(f"Alias_{n.replace('.', '_')}", (Alias,), attrs))


def _uri(args: dict[str, Any]) -> dict[str, Any]:
    out = dict(args)
    fmt = out.pop("body_format", None)
    out.pop("return_content", None)  # runbook always returns the body
    if "status_code" in out:
        out.setdefault("expect", {})
        out["expect"] = {**out["expect"], "status": out.pop("status_code")}
    if fmt == "json" and "body" in out:
        out["json"] = out.pop("body")
    elif fmt not in (None, "raw", "json"):
        raise RenderError(f"uri: body_format {fmt!r} is not supported (json or raw)")
    return out


def _pause(args: dict[str, Any]) -> dict[str, Any]:
    out = dict(args)
    if "prompt" in out:
        raise RenderError("pause: a prompt is not supported", hint="use `approve: {prompt: ...}` to ask the operator")
    minutes = out.pop("minutes", None)
    if minutes is not None:
        out["seconds"] = float(minutes) * 60 + float(out.get("seconds") or 0)
    if "seconds" not in out:
        raise RenderError("pause: give seconds or minutes", hint="use `approve:` to wait for the operator")
    return out


alias("shell", "shell", free_key="cmd")
alias("command", "command", free_key="cmd")
alias("copy", "copy")
alias("template", "template")
alias("file", "file", renames={"dest": "path", "name": "path"})
alias("uri", "http.request", renames={"status_code": "status_code", "body_format": "body_format", "return_content": "return_content"}, special=_uri, short=True)
alias("wait_for", "wait", short=True)
alias("debug", "debug", free_key="msg")
alias("assert", "assert")
alias("fail", "fail", free_key="msg")
alias("set_fact", "set_fact")
alias("pause", "wait", renames={"minutes": "minutes", "prompt": "prompt"}, special=_pause, short=True)

