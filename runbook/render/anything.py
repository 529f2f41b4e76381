"""A stand-in for values only known at run time (registered results, loop items): validation and
dry runs render templates with it, and it answers every question a template may ask."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Anything:
    """Stands in for values only known at run time (registered results, loop items)."""

    # what Jinja2's sandbox asks before calling a value (class attributes: never an Anything)
    unsafe_callable = False
    alters_data = False

    def __getattr__(self, name: str) -> Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Anything:
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return True

    def __str__(self) -> str:
        return "<runtime>"

    def __call__(self, *a: Any, **kw: Any) -> Anything:
        return self

    def __contains__(self, item: Any) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __lt__(self, other: object) -> bool:
        return False

    __gt__ = __le__ = __ge__ = __lt__

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0

    def __add__(self, other: Any) -> Any:
        return other if isinstance(other, str) else self

    __radd__ = __add__
