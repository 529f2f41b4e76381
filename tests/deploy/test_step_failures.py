"""A client library's exception inside a step, against the real PostgreSQL server: a malformed DSN
in postgres.query/backup is that step's failure (type and message, no traceback, no password), then
rollback and always: — never "internal error" (exit 70), and --output json still prints its document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.conftest import Project

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY"):
        monkeypatch.delenv(var, raising=False)
    p = Project(tmp_path)
    p.inventory()
    return p


RUNBOOK = """
hosts: localhost
steps:
  - name: config
    copy: {content: "v2\\n", dest: "{{ t }}/app.conf"}
  - name: query
    postgres.query: {dsn: "{{ dsn }}", sql: "SELECT 1", expect: 1}
always:
  - name: notify
    shell: "echo {{ run.status }} > {{ t }}/always"
"""


def broken_dsns(good: str) -> list[str]:
    """The session server's DSN, spoilt in the ways people spoil DSNs."""
    host_part = good.split("@", 1)[1]  # 127.0.0.1:PORT/db
    password = good.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    port = host_part.split(":", 1)[1].split("/", 1)[0]
    return [
        f"host=127.0.0.1 port=notaport password={password}",  # not a number
        f"host=127.0.0.1 port={port} ===",  # not key=value
        f"host=127.0.0.1 port={port} nosuchoption=1 password={password}",  # unknown option
        f"postgresql://app:{password}@[::1:{port}/db",  # unbalanced brackets
        f"host=127.0.0.1 port={port} dbname=x password='{password}",  # unterminated quote
    ]


def test_a_malformed_dsn_is_the_steps_failure(project: Project, tmp_path: Path, postgres_server, db: str) -> None:
    project.runbook("pg", RUNBOOK)
    t = tmp_path / "t"
    t.mkdir()
    password = db.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    for dsn in broken_dsns(db):
        (t / "app.conf").write_text("v1\n")
        res = project.exec("pg", "--output", "json", "-e", f"t={t}", "-e", json.dumps({"dsn": dsn}))
        assert res.exit_code == 1, (dsn, res.output)
        assert "internal error" not in res.output and "Traceback" not in res.output
        assert password not in res.output, dsn
        doc = json.loads(res.stdout)
        query = project.steps(doc)["query"]
        assert query["outcome"] == "failed" and query["msg"], (dsn, query)
        assert (t / "app.conf").read_text() == "v1\n"  # rolled back
        assert (t / "always").read_text().strip() == "rolled_back"


def test_the_traceback_is_shown_only_with_vvv(project: Project, tmp_path: Path, postgres_server, db: str) -> None:
    project.runbook("pg", RUNBOOK)
    t = tmp_path / "t"
    t.mkdir()
    dsn = broken_dsns(db)[1]
    res = project.exec("pg", "-e", f"t={t}", "-e", json.dumps({"dsn": dsn}))
    assert "Traceback" not in res.output
    res = project.exec("pg", "-vvv", "-e", f"t={t}", "-e", json.dumps({"dsn": dsn}))
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.output
