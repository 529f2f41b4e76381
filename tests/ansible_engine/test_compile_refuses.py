"""`runbook compile` refuses every malformed runbook of the corpus as `runbook show` does: exit 2,
`error: FILE:LINE:COL: ...`, never a traceback or a half-written playbook."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.robustness.corpus import Case
from tests.robustness.test_malformed_runbooks import STATIC, assert_refused, ids, root, run, write  # noqa: F401


@pytest.mark.parametrize("case", STATIC, ids=ids(STATIC))
def test_compile_refuses_it(root: Path, case: Case) -> None:  # noqa: F811 - the fixture
    path = write(root, case)
    out = root / "compiled.yml"
    assert_refused(run("compile", case.id, "-o", str(out)), path, case)
    assert not out.exists()
