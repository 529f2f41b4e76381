"""The shipped playbooks/local-smoke.yml, end to end on this machine: preflight, templated config,
a real HTTP service it starts and health-checks, and the automatic rollback on an injected failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.conftest import REPO, Project, free_port, port_is_free


@pytest.fixture
def smoke(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("RUNBOOK_PATH", str(REPO / "playbooks"))  # state and audit stay in tmp_path
    return project


def test_local_smoke_succeeds_and_leaves_nothing_running(smoke: Project, tmp_path: Path) -> None:
    smoke_dir, port = tmp_path / "smoke", free_port()
    res = smoke.cli(
        "exec", "local-smoke", "-e", f"smoke_dir={smoke_dir}", "-e", f"smoke_port={port}", "--output", "json"
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    steps = smoke.steps(doc)
    assert steps["Health check"]["outcome"] == "ok"
    assert steps["Verify the deployed version"]["outcome"] == "ok"
    conf = (smoke_dir / "app.conf").read_text()
    assert f"listen = 127.0.0.1:{port}" in conf and f"(run {doc['run_id']})" in conf
    assert (smoke_dir / "app.conf").stat().st_mode & 0o777 == 0o640
    assert json.loads((smoke_dir / "www" / "health").read_text())["status"] == "healthy"
    assert steps["debug"]["msg"] == "local-smoke success on localhost"
    assert port_is_free(port)
    assert not (smoke_dir / "http.pid").exists()


def test_local_smoke_failure_rolls_everything_back(smoke: Project, tmp_path: Path) -> None:
    smoke_dir, port = tmp_path / "smoke", free_port()
    res = smoke.cli(
        "exec",
        "local-smoke",
        "-e",
        f"smoke_dir={smoke_dir}",
        "-e",
        f"smoke_port={port}",
        "-e",
        "fail_at=verify",
        "--output",
        "json",
    )
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert doc["status"] == "rolled_back"
    host = doc["hosts"]["localhost"]
    assert host["stats"]["rolled_back"] == 4
    assert smoke.steps(doc)["Health check"]["outcome"] == "ok"
    assert not smoke_dir.exists()  # every file and directory it made is gone
    assert port_is_free(port)
    assert smoke.steps(doc)["debug"]["msg"] == "local-smoke rolled_back on localhost"
