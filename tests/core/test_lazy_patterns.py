"""A pattern made with ``lazy_re`` (runbook.model.lazyre) is ``re.compile``'s pattern, compiled the
first time it is used: every method and attribute gives what the compiled one gives, it is compiled
once, and a bad pattern fails at its first use."""

from __future__ import annotations

import re

import pytest

from runbook.model.lazyre import lazy_re


def test_a_lazy_pattern_answers_as_the_compiled_one() -> None:
    source, flags = r"(?P<key>[a-z]+)=(\d+)", re.I
    lazy, compiled = lazy_re(source, flags), re.compile(source, flags)
    text = "a=1 B=22 c=x d=333"
    assert repr(lazy) == f"lazy_re({source!r})"  # not compiled yet
    assert lazy.search(text).group("key") == compiled.search(text).group("key")  # type: ignore[union-attr]
    assert lazy.match(text).span() == compiled.match(text).span()  # type: ignore[union-attr]
    assert lazy.fullmatch("a=1") is not None and lazy.fullmatch(text) is None
    assert lazy.findall(text) == compiled.findall(text)
    assert [m.span() for m in lazy.finditer(text)] == [m.span() for m in compiled.finditer(text)]
    assert lazy.sub(r"\2", text) == compiled.sub(r"\2", text)
    assert lazy.subn("-", text) == compiled.subn("-", text)
    assert lazy.split(text) == compiled.split(text)
    assert (lazy.pattern, lazy.flags, lazy.groups, lazy.groupindex) == (
        compiled.pattern, compiled.flags, compiled.groups, compiled.groupindex,
    )  # fmt: skip


def test_a_lazy_pattern_is_compiled_on_first_use_only(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = re.compile

    def counting(pattern: str, flags: int = 0) -> re.Pattern[str]:
        compiled.append(pattern)
        return real(pattern, flags)

    monkeypatch.setattr(re, "compile", counting)
    lazy = lazy_re(r"x+")
    assert compiled == []
    assert lazy.match("xx") is not None and lazy.search("axx") is not None and lazy.pattern == "x+"
    assert compiled == ["x+"]


def test_a_bad_pattern_fails_where_it_is_first_used() -> None:
    lazy = lazy_re(r"(unclosed")
    with pytest.raises(re.error):
        lazy.match("x")
