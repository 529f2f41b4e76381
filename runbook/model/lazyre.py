"""Regular expressions compiled on first use, not at import: a module's patterns cost 1-3 ms each
to compile, and most commands use only a few of the modules' many (``runbook validate`` and
``plan`` start in an editor and at every commit)."""

from __future__ import annotations

import re
from typing import Any, cast

_METHODS = ("match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer", "scanner")
_ATTRIBUTES = ("pattern", "flags", "groups", "groupindex")


class _Lazy:
    """Stands for ``re.compile(pattern, flags)``: the first attribute read compiles it and binds the
    compiled pattern's methods and attributes to this object, so later calls cost what a call on a
    module-level compiled pattern costs."""

    def __init__(self, pattern: str, flags: int = 0):
        self.__dict__["_rb_source"] = (pattern, flags)

    def __getattr__(self, name: str) -> Any:  # only for names not bound yet
        if name.startswith("__") or name == "_rb_source":
            raise AttributeError(name)
        compiled = re.compile(*self.__dict__["_rb_source"])
        for attr in (*_METHODS, *_ATTRIBUTES):
            self.__dict__[attr] = getattr(compiled, attr)
        return getattr(compiled, name)

    def __repr__(self) -> str:
        return f"lazy_re({self.__dict__['_rb_source'][0]!r})"


def lazy_re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, compiled when first used (a syntax error shows then)."""
    return cast("re.Pattern[str]", _Lazy(pattern, flags))
