"""Values known only at run time (a registered result, a set_fact value, a loop item) while a runbook
is checked before it runs (``runbook validate``) or planned (``runbook plan``: the steps a dry-run
does not run register nothing).

``Anything`` stands in for such a value: it answers every question (attribute, index, comparison,
filter) with something harmless, and notes that it was asked (``reading()``). A template error met
while a run-time value was read is not the runbook's error: the real value decides, during the run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from runbook.model.lazyre import lazy_re

RUNTIME = "<runtime>"  # how a run-time value reads inside a larger string


class _Reads(threading.local):
    depth = 0
    touched = False


_READS = _Reads()


def _touch() -> None:
    _READS.touched = True


class Reading:
    """What ``reading()`` yields: whether a run-time value was read inside the block."""

    touched = False


@contextlib.contextmanager
def reading() -> Iterator[Reading]:
    """Notes whether any run-time value is read inside the block (nested blocks: each its own)."""
    outer = _READS.touched
    _READS.touched = False
    seen = Reading()
    try:
        yield seen
    finally:
        seen.touched = _READS.touched
        _READS.touched = outer or _READS.touched


def touched_now() -> bool:
    """Whether a run-time value was read since the innermost ``reading()`` began."""
    return _READS.touched


class Anything:
    """Stands in for values only known at run time (registered results, loop items, set_fact)."""

    # what Jinja2's sandbox asks before calling a value (class attributes: never an Anything)
    unsafe_callable = False
    alters_data = False

    def __getattr__(self, name: str) -> Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        _touch()
        return self

    def __getitem__(self, key: Any) -> Anything:
        _touch()
        return self

    def __iter__(self) -> Iterator[Any]:
        _touch()
        return iter(())

    def __len__(self) -> int:
        _touch()
        return 0

    def __bool__(self) -> bool:
        _touch()
        return True

    def __str__(self) -> str:
        _touch()
        return RUNTIME

    def __repr__(self) -> str:
        _touch()
        return RUNTIME

    def __call__(self, *a: Any, **kw: Any) -> Anything:
        _touch()
        return self

    def __contains__(self, item: Any) -> bool:
        _touch()
        return False

    def __eq__(self, other: object) -> bool:
        _touch()
        return False

    def __ne__(self, other: object) -> bool:
        _touch()
        return True

    def __hash__(self) -> int:
        _touch()
        return 0

    def __lt__(self, other: object) -> bool:
        _touch()
        return False

    __gt__ = __le__ = __ge__ = __lt__

    def __int__(self) -> int:
        _touch()
        return 0

    def __float__(self) -> float:
        _touch()
        return 0.0

    def __index__(self) -> int:
        _touch()
        return 0

    def __add__(self, other: Any) -> Any:
        _touch()
        return other if isinstance(other, str) else self

    __radd__ = __add__

    def __sub__(self, other: Any) -> Anything:
        _touch()
        return self

    __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __floordiv__ = __mod__ = __sub__
    __rmod__ = __sub__

    def __neg__(self) -> Anything:
        _touch()
        return self

    __pos__ = __abs__ = __neg__


_UNDEFINED_NAME = lazy_re(r"undefined variable: '([A-Za-z_][A-Za-z0-9_]*)' is undefined")


def unknowable(message: str, touched: bool, runtime_names: frozenset[str] | set[str] = frozenset()) -> bool:
    """Is this template error one that only the run can decide? A value known at run time was
    read (or shows in the message), and the error is not a plainly undefined variable (a typo stays
    an error even next to a registered value)."""
    if not touched and RUNTIME not in message:
        return False
    m = _UNDEFINED_NAME.search(message)
    return m is None or m.group(1) in runtime_names


class PartlyKnown(dict):  # type: ignore[type-arg]
    """What a step a dry-run planned (and did not run) registers: what the plan knows (the path it
    would write, changed), and a run-time value for the rest (its output, return code, ...)."""

    def __missing__(self, key: Any) -> Anything:
        _touch()
        return Anything()


def planned_result(registered: dict[str, Any]) -> PartlyKnown:
    """A planned step's registered result: the values a dry-run did not produce (empty output, no
    return code) are known only at run time."""
    return PartlyKnown(
        {k: Anything() if v is None or (isinstance(v, (str, list, dict)) and not v) else v for k, v in registered.items()}
    )


KNOWN_AT_RUN_TIME = "dry-run: known at run time (made of a value a step the plan did not run gives)"
