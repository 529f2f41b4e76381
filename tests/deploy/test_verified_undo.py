"""A rollback of migrations is checked against the snapshot: the tracking table must list exactly the
versions applied before the run (real PostgreSQL from the session fixture)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from runbook.cli.main import cli

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RUNBOOK = """\
hosts: localhost
steps:
  - name: Prepare
    shell: "true"
    undo: {shell: "{{ tamper }}"}
  - name: Migrate
    postgres.migrate: {dsn: "{{ dsn }}", dir: migrations}
  - name: Boom
    fail: {msg: injected}
    when: boom | bool
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "mig.yml").write_text(RUNBOOK)
    m = tmp_path / "migrations"
    m.mkdir()
    (m / "001_a.sql").write_text("CREATE TABLE a (id int);\n")
    (m / "001_a.down.sql").write_text("DROP TABLE a;\n")
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")
    return tmp_path


def run(db: str, boom: bool, tamper: str = "true") -> tuple[int, dict]:
    values = json.dumps({"dsn": db, "boom": boom, "tamper": tamper})
    res = CliRunner().invoke(cli, ["exec", "mig", "-i", "inv", "-e", values, "--output", "json"])
    return res.exit_code, json.loads(res.stdout)


def applied(db: str) -> list[str]:
    with psycopg.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def add_second(project: Path) -> None:
    (project / "migrations" / "002_b.sql").write_text("CREATE TABLE b (id int);\n")
    (project / "migrations" / "002_b.down.sql").write_text("DROP TABLE b;\n")


def test_a_migration_row_deleted_after_the_undo_is_exit_4_naming_it(project: Path, db: str) -> None:
    code, doc = run(db, boom=False)
    assert code == 0, doc["message"]
    before = applied(db)
    assert len(before) == 1
    add_second(project)
    tamper = f"psql {db!r} -qc \"DELETE FROM schema_migrations WHERE version = '{before[0]}'\""
    code, doc = run(db, boom=True, tamper=tamper)
    assert code == 4, doc["message"]
    (problem,) = doc["hosts"]["localhost"]["rollback_problems"]
    assert problem.startswith("localhost: step 'Migrate' (postgres.migrate) is not as before the run: ")
    assert f"schema_migrations: expected applied [{before[0]}], found [] (missing: {before[0]})" in problem
    assert "***" in problem and db.split("//", 1)[1].split("@")[0] not in problem  # no password shown
    assert doc["status"] == "rollback_failed"


def test_migrations_undone_faithfully_are_checked(project: Path, db: str) -> None:
    code, doc = run(db, boom=False)
    assert code == 0, doc["message"]
    before = applied(db)
    add_second(project)
    code, doc = run(db, boom=True)
    assert code == 1, doc["message"]
    assert applied(db) == before
    undo = next(s for s in doc["hosts"]["localhost"]["steps"] if s["name"] == "undo: Migrate")
    assert f"checked: schema_migrations: applied [{before[0]}], as before" in undo["msg"]
