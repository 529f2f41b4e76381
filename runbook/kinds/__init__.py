"""Step kinds, one module per family, found through the ``runbook.steps`` entry-point group.

A package (runbook itself, or a third-party one) declares its step kinds in its pyproject.toml::

    [project.entry-points."runbook.steps"]
    acme = "acme_runbook.steps"            # every kind named acme.* is in this module
    acme_check = "acme_runbook.steps:Probe"  # or one class, found by its exact module name

An entry point's *name* says which module names it provides: the exact name (``shell``) or the
first dotted parts of them (``compose`` for ``compose.up``; ``ansible.module`` before ``ansible``,
the longest wins). Its *value* is a module (its StepKind classes with a ``name`` register, with or
without ``@register``) or one StepKind class. A family is imported only when a step uses one of its
kinds, or when every kind is listed (``runbook schema``, "did you mean ..."), and the entry points
are read once per process, when a name is not one of runbook's own. runbook's own families come
first: a third-party package names its kinds under names of its own (``acme.*``).

runbook's own families are the table ``BUILTIN`` below, the same as its pyproject.toml's entry
points (a test keeps them equal): finding them reads no file and scans no installed package's
metadata (that scan, over every distribution on sys.path, is done only for a name that is not
runbook's own).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from runbook.errors import ValidationError

GROUP = "runbook.steps"
OWN = "runbook"  # the distribution whose families are the built-in ones


@dataclass(frozen=True)
class Family:
    """One entry point of the ``runbook.steps`` group: a module of step kinds (or one kind)."""

    name: str  # which module names it provides: exact, or their first dotted parts
    value: str  # "package.module" or "package.module:Class"
    dist: str  # the distribution that declares it

    @property
    def builtin(self) -> bool:
        return self.dist == OWN

    def load(self) -> None:
        """Import it and register its step kinds (runbook.kinds.base.register)."""
        from runbook.kinds import base

        module, _, attr = self.value.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:
            if self.builtin:
                raise
            raise ValidationError(
                f"the step kinds '{self.name}' of {self.dist} cannot be loaded ({self.value}): "
                f"{type(exc).__name__}: {exc}",
                hint=f"reinstall {self.dist}, or uninstall it if you do not use its step kinds",
            ) from None
        for cls in _kinds_in(obj):
            base.register_once(cls)


def _kinds_in(obj: Any) -> list[type]:
    from runbook.kinds.base import StepKind

    if isinstance(obj, type) and issubclass(obj, StepKind):
        return [obj]
    if isinstance(obj, ModuleType):
        return [
            c for c in vars(obj).values()
            if isinstance(c, type) and issubclass(c, StepKind) and c.name and c.__module__ == obj.__name__
        ]  # fmt: skip
    raise ValidationError(f"{obj!r} is neither a module nor a StepKind class (a `{GROUP}` entry point)")


# runbook's own entry points of the group (pyproject.toml [project.entry-points."runbook.steps"])
BUILTIN: dict[str, str] = {
    "shell": "runbook.kinds.shell",
    "command": "runbook.kinds.shell",
    "copy": "runbook.kinds.files",
    "template": "runbook.kinds.files",
    "file": "runbook.kinds.files",
    "wait": "runbook.kinds.flow",
    "assert": "runbook.kinds.flow",
    "fail": "runbook.kinds.flow",
    "approve": "runbook.kinds.control",
    "set_fact": "runbook.kinds.control",
    "debug": "runbook.kinds.control",
    "check": "runbook.kinds.checks",
    "http": "runbook.kinds.http",
    "compose": "runbook.kinds.compose",
    "postgres": "runbook.kinds.postgres",
    "redis": "runbook.kinds.redis",
    "ansible": "runbook.kinds.ansible",
    "coolify": "runbook.kinds.coolify",
    "notify": "runbook.kinds.notify",
    "prometheus": "runbook.kinds.prometheus",
    "block": "runbook.kinds.tasks",
    "meta": "runbook.kinds.tasks",
    "uri": "runbook.kinds.ansible",
    "wait_for": "runbook.kinds.ansible",
    "pause": "runbook.kinds.ansible",
}


@functools.cache
def _declared() -> tuple[Family, ...]:
    """Every entry point of the group, from the installed metadata (read once: importlib.metadata
    scans sys.path)."""
    from importlib.metadata import entry_points

    return tuple(
        Family(ep.name, ep.value, ep.dist.name if ep.dist is not None else "?")
        for ep in entry_points(group=GROUP)
    )


@functools.cache
def builtin_families() -> dict[str, Family]:
    """runbook's own families by entry-point name (``BUILTIN``: no metadata scan at start-up)."""
    return {name: Family(name, value, OWN) for name, value in BUILTIN.items()}


@functools.cache
def families() -> dict[str, Family]:
    """Every family by entry-point name: third-party ones, then runbook's own (which win)."""
    found: dict[str, Family] = {}
    for fam in _declared():
        if not fam.builtin:
            found.setdefault(fam.name, fam)
    found.update(builtin_families())
    return found


_loaded: set[str] = set()
_all_loaded = False


def _load(fam: Family) -> None:
    if fam.name in _loaded:
        return
    fam.load()
    _loaded.add(fam.name)


def family_of(module: str) -> Family | None:
    """The family that provides the module name ``module``: its exact name, else the longest
    leading dotted part of it that names a family; runbook's own first (a third-party family has
    names of its own: it cannot add kinds under ``compose.``)."""
    parts = module.split(".")
    for table in (builtin_families, families):
        for n in range(len(parts), 0, -1):
            fam = table().get(".".join(parts[:n]))
            if fam is not None:
                return fam
    return None


def load_for(module: str) -> None:
    """Import the family that defines ``module`` (``compose.up`` -> compose), if there is one."""
    fam = family_of(module)
    if fam is not None:
        _load(fam)


def load_all() -> None:
    """Import every family (to list them all). A third-party family that cannot be loaded is left
    out with a warning; using one of its kinds reports why."""
    global _all_loaded
    if _all_loaded:
        return
    for fam in families().values():
        try:
            _load(fam)
        except ValidationError as exc:
            warnings.warn(exc.message, stacklevel=2)
    _all_loaded = True
