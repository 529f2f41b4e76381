"""The code Jinja compiles for a template is kept on disk for the next process
(runbook.render.codecache): a template renders the same with the cache off, cold, warm and
corrupt; a warm cache spares Jinja's compiler; an entry that is torn, tampered with, not this
user's, writable by others or a symlink is not used, nor a directory others may write; the cache
is private (0700 / 0600) and can be turned off."""

from __future__ import annotations

import marshal
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from runbook.errors import RunbookError
from runbook.render import codecache
from runbook.render import templar as tpl
from runbook.render.secrets import Redactor
from runbook.render.templar import LazyVars, Templar

# (text, native, yaml_value): forms Jinja compiles (filters, statements, operators, errors)
CASES = [
    ("{{ s | upper }}-{{ n + 1 }}", False, False),
    ("{% for x in lst %}{{ x }},{% endfor %}{{ lst | length }}", False, False),
    ("{% set y = n * 3 %}{{ y }}{% if y > 3 %} big{% endif %}", False, False),
    ("{{ lst | map('string') | join('/') }}", True, True),
    ("{{ 'a1b22' | regex_replace('(\\d+)', '<\\1>') }}", True, True),
    ("{{ db_password | b64encode }}", True, True),
    ("pw={{ db_password | upper }}", False, False),
    ("{{ nothere | default('fallback') }} {{ s | quote }}", False, False),
    ("{{ nothere | upper }}", False, False),
    ("{{ s.__class__.__mro__ }}", True, True),
    ("{{ s | no_such_filter }}", False, False),
    ("{{ s }", False, False),
    ("{{ lookup('pipe', s) }}", True, True),
    ("{{ lookup('env', 'NO_SUCH_VARIABLE_HERE') | default('unset', true) }}", True, True),
    ("{{ 10 ** 5000 }}", True, False),
    ("{{ n is number and lst is iterable }}", True, False),
]


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RUNBOOK_CODE_CACHE", raising=False)
    codecache.reset()
    tpl._cache.clear()
    yield tmp_path / "cache" / "runbook" / "code"
    codecache.reset()
    tpl._cache.clear()


def _outcome(text: str, native: bool, yaml_value: bool) -> tuple[Any, ...]:
    """What rendering ``text`` gives in a fresh process (nothing compiled in memory yet)."""
    tpl._cache.clear()
    templar = Templar(Redactor(secrets=["hunter2-secret"], names={"declared"}))
    layer = {"s": "it's", "n": 2, "lst": [1, 2], "db_password": "hunter2-secret"}
    variables = LazyVars([(layer, False)], templar)
    try:
        value: Any = templar.render_str(text, variables, native=native, yaml_value=yaml_value)
        value = (type(value).__name__, re.sub(" at 0x[0-9a-f]+", "", repr(value)))
    except RunbookError as exc:
        value = (type(exc).__name__, exc.message, exc.hint)
    return value, sorted(templar.redactor._secrets)


def _all_outcomes() -> list[tuple[Any, ...]]:
    return [_outcome(*case) for case in CASES]


def _uncached(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    with monkeypatch.context() as m:
        m.setenv("RUNBOOK_CODE_CACHE", "off")
        codecache.reset()
        try:
            return _all_outcomes()
        finally:
            codecache.reset()


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.code"))


class _Compiles:
    """Counts Jinja's code generation in both of runbook's environments."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.count = 0
        for env in (tpl.ENV, tpl.YAML_ENV):
            generate = env._generate

            def counted(*args: Any, _generate: Any = generate, **kwargs: Any) -> Any:
                self.count += 1
                return _generate(*args, **kwargs)

            monkeypatch.setattr(env, "_generate", counted)


def test_a_template_renders_the_same_with_the_cache_off_cold_warm_and_corrupt(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _uncached(monkeypatch)
    assert not cache_home.exists()  # off: nothing written
    compiles = _Compiles(monkeypatch)
    assert _all_outcomes() == expected  # cold
    entries = _entries(cache_home)
    assert entries  # the templates that compiled and were not refused
    cold, compiles.count = compiles.count, 0
    assert _all_outcomes() == expected  # warm: only those that fail to compile are compiled again
    failing = cold - len(entries)
    assert compiles.count == failing < cold
    for n, entry in enumerate(entries):  # torn, emptied, garbage, a byte changed
        data = entry.read_bytes()
        broken = [data[: len(data) // 2], b"", b"not a cache entry", data[:-1] + bytes([data[-1] ^ 1])]
        entry.write_bytes(broken[n % len(broken)])
    compiles.count = 0
    assert _all_outcomes() == expected  # corrupt: compiled again ...
    assert compiles.count == cold
    compiles.count = 0
    assert _all_outcomes() == expected  # ... and written again
    assert compiles.count == failing


def test_only_templates_that_compile_and_are_allowed_are_kept(cache_home: Path) -> None:
    tpl.compile_template("{{ s | upper }}")
    assert len(_entries(cache_home)) == 1
    for text in ("{{ s | no_such_filter }}", "{{ s }", "{{ lookup('pipe', s) }}"):
        with pytest.raises(RunbookError):
            tpl.compile_template(text)
    tpl.compile_template("{{ s }}")  # built without Jinja's compiler: nothing to keep
    assert len(_entries(cache_home)) == 1


def _forge(directory: Path, text: str, yaml_value: bool = False) -> Path:
    """The entry for ``text`` made to hold the code of another template, with a valid checksum:
    if it were used, ``text`` would render as 'FORGED'."""
    env = tpl.YAML_ENV if yaml_value else tpl.ENV
    codecache.store(tpl._fingerprint(env), text, env.compile("FORGED"))
    [entry] = [p for p in _entries(directory) if p.name.startswith(codecache.key(tpl._fingerprint(env), text).hex())]
    return entry


def _rendered(text: str) -> str:
    tpl._cache.clear()
    return Templar().render_str(text, {"s": "it's"})


def test_an_entry_of_another_user_or_writable_by_others_is_not_used(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "{{ s | upper }}"
    entry = _forge(cache_home, text)
    assert _rendered(text) == "FORGED"  # the check below is what keeps it out
    for mode in (0o620, 0o602):
        entry.chmod(mode)
        assert _rendered(text) == "IT'S"
    entry = _forge(cache_home, text)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)  # the file is now someone else's
    assert _rendered(text) == "IT'S"


def test_a_tampered_entry_is_not_used(cache_home: Path) -> None:
    text = "{{ s | upper }}"
    tpl.compile_template(text)
    [entry] = _entries(cache_home)
    data = entry.read_bytes()
    head = len(codecache.MAGIC) + 64
    entry.write_bytes(data[:head] + marshal.dumps(tpl.ENV.compile("FORGED")))  # the old checksum
    assert _rendered(text) == "IT'S"
    other = "{{ s | lower }}"
    forged = _forge(cache_home, other)
    entry.write_bytes(forged.read_bytes())  # a valid entry, of another template
    assert _rendered(text) == "IT'S"


def test_a_symlinked_entry_or_an_open_directory_is_not_used(cache_home: Path, tmp_path: Path) -> None:
    text = "{{ s | upper }}"
    entry = _forge(cache_home, text)
    target = tmp_path / "elsewhere.code"
    entry.rename(target)
    entry.symlink_to(target)
    assert _rendered(text) == "IT'S"
    entry.unlink()
    target.rename(entry)
    cache_home.chmod(0o777)
    codecache.reset()
    assert codecache.directory() is None
    assert _rendered(text) == "IT'S"
    cache_home.chmod(0o700)
    codecache.reset()
    assert _rendered(text) == "FORGED"  # the same entry, in a private directory again


def test_the_cache_is_private_and_can_be_turned_off(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tpl.compile_template("{{ s | upper }}")
    assert cache_home.stat().st_mode & 0o777 == 0o700
    assert cache_home.parent.stat().st_mode & 0o777 == 0o700
    [entry] = _entries(cache_home)
    assert entry.stat().st_mode & 0o777 == 0o600
    assert not list(cache_home.glob("*.tmp"))
    assert isinstance(tpl.compile_template("{{ s | upper }}"), jinja2.Template)
    for off in ("off", "0", "no", "false"):
        monkeypatch.setenv("RUNBOOK_CODE_CACHE", off)
        codecache.reset()
        assert codecache.directory() is None
    monkeypatch.setenv("RUNBOOK_CODE_CACHE", "on")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(cache_home.parent.parent.parent / "home"))
    codecache.reset()
    assert codecache.directory() == str(cache_home.parent.parent.parent / "home" / ".cache" / "runbook" / "code")


def test_each_environment_and_version_has_its_own_key() -> None:
    yaml_fp, plain_fp = tpl._fingerprint(tpl.YAML_ENV), tpl._fingerprint(tpl.ENV)
    assert yaml_fp != plain_fp  # the YAML lexer keeps backslashes: other code for the same text
    env = tpl._env()  # a new environment like ENV, then one filter more
    assert tpl._fingerprint(env) == plain_fp
    env2 = tpl._env()
    env2.filters["extra"] = str
    assert tpl._fingerprint(env2) != plain_fp


def test_another_jinja2_or_runbook_version_is_another_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import runbook

    before = tpl._fingerprint(tpl._env())
    monkeypatch.setattr(jinja2, "__version__", jinja2.__version__ + ".post1")
    after_jinja = tpl._fingerprint(tpl._env())
    monkeypatch.setattr(runbook, "__version__", runbook.__version__ + ".post1")
    after_runbook = tpl._fingerprint(tpl._env())
    assert len({before, after_jinja, after_runbook}) == 3


def test_an_edit_of_the_code_generator_or_the_lookup_check_is_another_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept template skips the lookup check (only allowed ones are kept): a checkout whose check
    changed must not find the templates the old check allowed."""
    from runbook.render import lookups

    def fingerprint() -> bytes:
        tpl._own_code.cache_clear()
        return tpl._fingerprint(tpl._env())

    before = fingerprint()

    def stricter(tree: Any) -> str | None:
        return "refused"

    stricter.__module__ = lookups.__name__
    monkeypatch.setattr(lookups, "check_lookups", stricter)
    after_check = fingerprint()
    monkeypatch.setattr(lookups, "LOOKUPS", ("env",))
    after_names = fingerprint()

    def computed_from(node: Any) -> set[str]:
        return set()

    computed_from.__module__ = tpl.__name__
    monkeypatch.setattr(tpl, "computed_from", computed_from)
    after_codegen = fingerprint()
    assert len({before, after_check, after_names, after_codegen}) == 4
    monkeypatch.undo()
    assert fingerprint() == before


def test_a_template_holding_a_secret_is_never_written_to_the_cache(cache_home: Path) -> None:
    """A vault value or a declared secret with ``{{ }}`` in it, or a credential in a URL or a
    key=value, is compiled as usual but its code (its constants: the secret) never goes to disk."""
    secret = "s3cr3t-vault-pw"
    templar = Templar(redactor=Redactor([secret]))
    assert templar.render_str("{{ s | upper }}:" + secret, {"s": "u"}) == "U:" + secret
    for text in ("{{ s | lower }}@postgresql://app:hunter22@db/x", "{{ s | lower }} password=hunter22"):
        assert templar.render_str(text, {"s": "U"}).startswith("u")
    assert _entries(cache_home) == []
    assert templar.render_str("{{ s | upper }}", {"s": "u"}) == "U"  # no secret: kept
    assert len(_entries(cache_home)) == 1
    assert not any(secret.encode() in p.read_bytes() or b"hunter22" in p.read_bytes() for p in cache_home.iterdir())
