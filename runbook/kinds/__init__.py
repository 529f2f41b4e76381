"""Step kinds, one module per family. ``load_all`` imports them so they register themselves."""

from __future__ import annotations

import importlib

# Each entry is a module under runbook.kinds that registers step kinds on import.
FAMILIES = (
    "control",
    "shell",
    "files",
    "checks",
    "http",
    "flow",
    "compose",
    "postgres",
    "redis",
    "ansible",
    "coolify",
    "notify",
    "prometheus",
)

_loaded = False
_families: set[str] = set()

# Modules whose family is not the part of their name before the dot.
_FAMILY_OF = {
    "shell": "shell", "command": "shell",
    "copy": "files", "template": "files", "file": "files",
    "wait": "flow", "assert": "flow", "fail": "flow",
    "approve": "control", "set_fact": "control", "debug": "control",
    "check": "checks",
    "uri": "ansible", "wait_for": "ansible", "pause": "ansible",  # Ansible's names (ansible_builtin)
}  # fmt: skip


def load_for(module: str) -> None:
    """Import the family that defines ``module`` (``compose.up`` -> compose), if it exists."""
    fam = _FAMILY_OF.get(module) or _FAMILY_OF.get(module.split(".")[0]) or module.split(".")[0]
    if fam in _families or fam not in FAMILIES:
        return
    importlib.import_module(f"runbook.kinds.{fam}")
    _families.add(fam)


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    for fam in FAMILIES:
        try:
            importlib.import_module(f"runbook.kinds.{fam}")
        except ModuleNotFoundError as exc:  # a family not written yet
            if exc.name != f"runbook.kinds.{fam}":
                raise
    _loaded = True
