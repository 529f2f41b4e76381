"""PyYAML, imported with its module-level regular expressions compiled on first use.

``import yaml`` compiles ~10 patterns; one of them, the pure-Python reader's check for characters
YAML cannot hold (a class of astral ranges), costs ~7.5 ms alone, and the C loader runbook uses
(libyaml checks the characters itself) never uses it: that is 5 % of a `runbook validate`. Every
runbook module imports yaml from here, so the first import is this one: while it runs,
``re.compile`` called from yaml's own modules returns a runbook.model.lazyre pattern (compiled on
its first use); a call from anywhere else (another thread) is the real one.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from runbook.model.lazyre import lazy_re


def _import_yaml() -> None:
    if "yaml" in sys.modules:  # imported before runbook was (its patterns are compiled already)
        return
    real = re.compile

    def compile_for_yaml(pattern: Any, flags: int = 0) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if isinstance(pattern, str) and (caller == "yaml" or caller.startswith("yaml.")):
            return lazy_re(pattern, flags)
        return real(pattern, flags)

    re.compile = compile_for_yaml  # type: ignore[assignment]
    try:
        import yaml  # noqa: F401 - imported here for the patch; bound below
    finally:
        if re.compile is compile_for_yaml:
            re.compile = real


_import_yaml()

import yaml  # noqa: E402 - the module imported just above (typed as PyYAML itself)

__all__ = ["yaml"]
