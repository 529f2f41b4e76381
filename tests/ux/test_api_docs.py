"""docs/api.md's examples run as written, in order, in one namespace (a scratch project of its own)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)


def test_the_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the examples' tempfile.mkdtemp() project
    monkeypatch.chdir(tmp_path)
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY", "RUNBOOK_AUDIT_DIR", "RUNBOOK_AUDIT"):
        monkeypatch.delenv(var, raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    code = blocks()
    assert len(code) >= 7
    namespace: dict[str, object] = {}
    for i, block in enumerate(code):
        try:
            exec(compile(block, f"{DOC}:python-block-{i + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/api.md example {i + 1} failed: {exc!r}\n{block}") from exc
    printed = capsys.readouterr().out
    assert "success" in printed and "Write the greeting" in printed
    assert "audit" in str(namespace["outcome"].audit_path)  # type: ignore[attr-defined]
