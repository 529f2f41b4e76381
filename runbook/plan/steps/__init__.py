"""Step kinds, one module per family. ``load_all`` imports them so they register themselves."""

from __future__ import annotations

import importlib

# Each entry is a module under runbook.plan.steps that registers step kinds on import.
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


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    for fam in FAMILIES:
        try:
            importlib.import_module(f"runbook.plan.steps.{fam}")
        except ModuleNotFoundError as exc:  # a family not written yet
            if exc.name != f"runbook.plan.steps.{fam}":
                raise
    _loaded = True
