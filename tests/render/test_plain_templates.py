"""Templates made only of text and ``{{ name.attr }}`` outputs (most of a runbook's) are built
without Jinja's compiler (runbook.render.templar._plain_template), and render exactly as the
templates Jinja compiles: the same text or value, the same error, the same variables read in the
same order, the same secrets learnt, the same run-time values touched; anything else is left to
Jinja."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
import pytest

from runbook.errors import RunbookError
from runbook.render import templar as tpl
from runbook.render.runtime import Anything, reading
from runbook.render.secrets import Redactor
from runbook.render.templar import LazyVars, Templar

TEXTS = [
    "{{ a }}", "{{a}}", "{{  a.b  }}", "{{ a.b.c }}", "x{{ a.b.c }}y", "{{ s }}/{{ n }}-{{ a.b.c }}.conf\n",
    "{{ later }}{{ s }}{{ later }}", "{{ nothere }}", "{{ s }}{{ nothere }}", "{{ a.nope }}",
    "{{ a.nope.deeper }}", "{{ s.__class__ }}", "{{ d._hidden }}", "{{ n }}", "{{ d.items }}",
    "{{ d.k }}", "{{ lazy_bad }}", "{{ self_ref }}", "{{ db_password }}", "pw={{ db_password }}",
    "{{ url }}", "{{ rt.stdout }}", "{{ rt }}", "{{ range }}", "{{ }}} }}", "{ {{ s }} }", "}}{{ s }}{{",
    "{{ s }}\r\n", "{{ true }}", "{{ none }}", "{{ loop }}", "{{ self }}", "{{ lookup }}", "{{ q }}",
    "{{ a.if }}", "{{ s | upper }}", "{{ s }}{% if n %}x{% endif %}", "{{- s }}", "{{ s }}{# c #}",
    "{{{ s }}", "{{ lst.0 }}", "", "plain text", "a {{ s }}\n\n",
]  # fmt: skip


class Recording(Mapping[str, Any]):
    """The variables, noting which are read (``in``, ``[]``), in order."""

    def __init__(self, inner: Mapping[str, Any], log: list[str]):
        self._inner, self._log = inner, log

    def __getitem__(self, key: str) -> Any:
        self._log.append(f"get {key}")
        return self._inner[key]

    def __contains__(self, key: object) -> bool:
        self._log.append(f"in {key}")
        return key in self._inner

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)


def _scope(log: list[str]) -> tuple[Templar, Any]:
    redactor = Redactor(secrets=["hunter2-secret"], names={"declared"})
    templar = Templar(redactor)
    layer = {
        "a": {"b": {"c": 3}},
        "s": "text",
        "n": None,
        "d": {"k": "v", "_hidden": 1},
        "later": "{{ s }}-{{ a.b.c }}",
        "lazy_bad": "{{ nothere }}",
        "self_ref": "{{ self_ref }}",
        "db_password": "hunter2-secret",
        "url": "postgresql://app:{{ db_password }}@db/app",
        "rt": Anything(),
        "lst": [1, 2],
    }
    return templar, Recording(LazyVars([(layer, False)], templar), log)


def _outcome(text: str, native: bool, yaml_value: bool, *, plain: bool) -> tuple[Any, ...]:
    tpl._cache.clear()
    tpl._names_cache.clear()
    tpl._PLAIN_TEMPLATES = plain
    log: list[str] = []
    templar, variables = _scope(log)
    try:
        with reading() as seen:
            try:
                value: Any = templar.render_str(text, variables, native=native, yaml_value=yaml_value)
                value = (type(value).__name__, re.sub(" at 0x[0-9a-f]+", "", repr(value)))  # no address
            except RunbookError as exc:
                value = (type(exc).__name__, exc.message, exc.hint)
        secrets = sorted(templar.redactor._secrets)
        return value, log, secrets, seen.touched
    finally:
        tpl._PLAIN_TEMPLATES = True
        tpl._cache.clear()
        tpl._names_cache.clear()


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(("native", "yaml_value"), [(False, False), (True, True), (True, False)])
def test_a_template_renders_as_the_one_jinja_compiles(text: str, native: bool, yaml_value: bool) -> None:
    assert _outcome(text, native, yaml_value, plain=True) == _outcome(text, native, yaml_value, plain=False)


@pytest.mark.parametrize("text", TEXTS)
def test_a_template_checks_as_the_one_jinja_compiles(text: str) -> None:
    def check(plain: bool) -> tuple[str, str] | None:
        tpl._cache.clear()
        tpl._PLAIN_TEMPLATES = plain
        try:
            tpl.syntax_check(text)
        except RunbookError as exc:
            return type(exc).__name__, exc.message
        finally:
            tpl._PLAIN_TEMPLATES = True
            tpl._cache.clear()
        return None

    assert check(True) == check(False)


def test_only_text_and_outputs_of_names_are_built_without_jinja() -> None:
    built = {t for t in TEXTS if tpl._plain_template(t, tpl.ENV) is not None}
    assert "{{ s }}/{{ n }}-{{ a.b.c }}.conf\n" in built and "{{ nothere }}" in built
    for text in (
        "{{ s | upper }}",
        "{{- s }}",
        "{{{ s }}",
        "{{ lst.0 }}",
        "{{ true }}",
        "{{ lookup }}",
        "{{ s }}\r\n",
    ):
        assert text not in built
    assert tpl._plain_template("{% set __rb_result = ( db_backup.path ) %}", tpl.YAML_ENV) is not None
    assert isinstance(tpl.compile_template("{{ a }}"), jinja2.Template)
    assert tpl.compile_template("x {{ a.b }}").render(a={"b": 1}) == "x 1"
