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


def test_yaml_imported_by_runbook_compiles_its_unused_patterns_only_when_used() -> None:
    """runbook.model.yamllib imports PyYAML with its module-level patterns lazy: the pure-Python
    reader's character check (~7.5 ms to compile, never used by the C loader) is not compiled by
    the import; yaml behaves as before (a fresh interpreter: pytest's plugins import yaml early)."""
    import subprocess
    import sys
    from pathlib import Path

    probe = r"""
import re, sys
from runbook.model.yamllib import yaml
check = yaml.reader.Reader.NON_PRINTABLE
print("compiled-at-import:", "search" in vars(check))
print("other-modules:", type(re.compile("x")).__name__)
doc = "a: yes\nb: 0x1F\nc: 1.5e3\nd: 2026-12-03 10:00:00\ne: ~\nf: '\u00e9'\n"
print("c:", sorted((k, type(v).__name__, str(v)) for k, v in yaml.load(doc, Loader=yaml.CSafeLoader).items()))
print("py:", sorted((k, type(v).__name__, str(v)) for k, v in yaml.load(doc, Loader=yaml.SafeLoader).items()))
try:
    yaml.load("a: \x07", Loader=yaml.SafeLoader)
except yaml.reader.ReaderError as exc:
    print("control-character:", "special characters are not allowed" in str(exc))
print("compiled-after-use:", "search" in vars(check))
print("dump:", yaml.safe_dump({"when": "2026-12-03", "n": 1}).strip().replace("\n", "|"))
"""
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root, timeout=60)
    assert res.returncode == 0, res.stderr
    out = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert out["compiled-at-import:"] == "False"
    assert out["other-modules:"] == "Pattern"  # only yaml's own compiles were made lazy, and only then
    assert out["c:"] == out["py:"]
    assert "('a', 'bool', 'True')" in out["c:"] and "('b', 'int', '31')" in out["c:"]
    assert "('d', 'datetime', '2026-12-03 10:00:00')" in out["c:"] and "('e', 'NoneType', 'None')" in out["c:"]
    assert out["control-character:"] == "True" and out["compiled-after-use:"] == "True"
    assert out["dump:"] == "n: 1|when: '2026-12-03'"
