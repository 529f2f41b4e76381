"""The one answer to "is this an Ansible module?" — a step whose module key names an installed
Ansible module (by FQCN, ``ansible.posix.sysctl``; or by short name, which Ansible resolves to
``ansible.builtin``/``ansible.legacy``) is an Ansible module step.

Found as Ansible finds them, without importing ansible (that costs a second): ansible-core's own
``ansible/modules/``, and ``ansible_collections/<ns>/<coll>/plugins/modules/`` under the collection
paths (ANSIBLE_COLLECTIONS_PATH / ANSIBLE_COLLECTIONS_PATHS, ~/.ansible/collections,
/usr/share/ansible/collections, and the Python path: a pip-installed ``ansible`` brings them).

runbook.kinds.ansible_module asks this first (it honours the collection paths of the moment, and
costs no import of ansible), then Ansible's own plugin loader for what files alone cannot tell."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
from pathlib import Path

_FQCN = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.([a-z0-9_]+)$")
_SHORT = re.compile(r"^[a-z0-9_]+$")


@functools.lru_cache(maxsize=1)
def _core_modules() -> Path | None:
    spec = importlib.util.find_spec("ansible")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "modules"


def collection_roots() -> list[Path]:
    """The directories that hold ``ansible_collections`` (in Ansible's order)."""
    env = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    listed = env.split(os.pathsep) if env else ["~/.ansible/collections", "/usr/share/ansible/collections"]
    roots = [Path(p).expanduser() for p in listed if p]
    roots += [Path(p) for p in sys.path if p]
    return roots


@functools.lru_cache(maxsize=1)
def _redirects() -> dict[str, str]:
    """ansible-core's routing of short module names that moved to collections (npm ->
    community.general.npm), from its config/ansible_builtin_runtime.yml."""
    core = _core_modules()
    path = core.parent / "config" / "ansible_builtin_runtime.yml" if core else None
    if path is None or not path.is_file():
        return {}
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    modules = (data.get("plugin_routing") or {}).get("modules") or {}
    return {k: v["redirect"] for k, v in modules.items() if isinstance(v, dict) and v.get("redirect")}


def _module_file(directory: Path, name: str) -> bool:
    return any((directory / f"{name}{ext}").is_file() for ext in (".py", ".ps1", ""))


def is_ansible_module(name: str) -> bool:
    """Is ``name`` an installed Ansible module (FQCN or ansible.builtin short name)?"""
    if not isinstance(name, str):
        return False
    m = _FQCN.match(name)
    if m:
        ns, coll, mod = m.groups()
        if (ns, coll) in (("ansible", "builtin"), ("ansible", "legacy")):
            core = _core_modules()
            return core is not None and _module_file(core, mod)
        for root in collection_roots():
            base = root / "ansible_collections" if root.name != "ansible_collections" else root
            if _module_file(base / ns / coll / "plugins" / "modules", mod):
                return True
        return False
    if _SHORT.match(name):
        core = _core_modules()
        if core is not None and _module_file(core, name):
            return True
        target = _redirects().get(name)
        return (
            bool(target) and target != name and _FQCN.match(target) is not None and is_ansible_module(target)
        )
    return False


def fqcn(name: str) -> str:
    """The module's full name (a short name is ansible.builtin's, or where ansible-core routes it)."""
    if _FQCN.match(name):
        return name
    return _redirects().get(name) or f"ansible.builtin.{name}"
