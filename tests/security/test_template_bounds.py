"""A short template never becomes an endless computation on the control machine: ``**`` and ``*``
are bounded in the sandbox (and so are never folded at compile time), ordinary arithmetic is not."""

from __future__ import annotations

import pytest

from runbook.render.filters import FilterError
from runbook.render.templar import ENV


@pytest.mark.parametrize(
    ("template", "expected"),
    [("{{ 2 ** 10 }}", "1024"), ("{{ 3 * 4 }}", "12"), ("{{ 'ab' * 3 }}", "ababab"), ("{{ [0] * 2 }}", "[0, 0]"),
     ("{{ 2.5 * 2 }}", "5.0"), ("{{ (-1) ** (10 ** 9) }}", "1")],
)  # fmt: skip
def test_ordinary_arithmetic_renders(template: str, expected: str) -> None:
    assert ENV.from_string(template).render() == expected


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "template",
    ["{{ 2 ** (10 ** 9) }}", "{{ 10 ** (10 ** 10) }}", "{{ 'x' * 10 ** 12 }}", "{{ [1, 2] * 10 ** 9 }}",
     "{% set n = 10 ** 8 %}{{ 'ab' * n }}"],
)  # fmt: skip
def test_explosive_arithmetic_is_refused(template: str) -> None:
    with pytest.raises(FilterError, match="too large"):
        ENV.from_string(template).render()
