"""`verify --audit-dsn`: the PostgreSQL sink's append-only table as the witness of what the audit
directory lost. Real `runbook exec` runs write both; the table is shared with other audit chains."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.postgres import PgServer

from .conftest import Pristine, exec_run
from .helpers import Outcome, failed, lines, put, records, rehash_from, runs, verify

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass(frozen=True)
class PgTrail:
    audit: Path  # three signed runs, mirrored to the database
    other: Path  # another directory's chain in the same table
    dsn: str


@pytest.fixture(scope="session")
def pg_pristine(
    pristine: Pristine, postgres_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> PgTrail:
    base = tmp_path_factory.mktemp("tamper-pg")
    audit, other = base / "audit", base / "other"
    for _ in range(3):
        exec_run(pristine.project, audit, pristine.key, "--audit-dsn", postgres_server.dsn)
    exec_run(pristine.project, other, pristine.key, "--audit-dsn", postgres_server.dsn)
    return PgTrail(audit, other, postgres_server.dsn)


@pytest.fixture
def pg(pg_pristine: PgTrail, tmp_path: Path) -> Path:
    """A fresh copy of the mirrored directory (its runs stay in the shared table)."""
    d = tmp_path / "audit"
    shutil.copytree(pg_pristine.audit, d)
    return d


def _check(d: Path, pristine: Pristine, dsn: str, *extra: str) -> Outcome:
    return verify(d, pristine.signers, "--audit-dsn", dsn, *extra)


def _ids(d: Path) -> list[str]:
    return [records(p)[0]["run_id"] for p in runs(d)]


def test_untouched_directory_matches_the_database(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    out = _check(pg, pristine, pg_pristine.dsn)
    assert out.exit_code == 0, out.output
    assert "cross-checked against the audit database" in out.output and "3 run(s)" in out.output
    assert "run(s) of other audit chains there not compared" in out.output  # the other directory's
    assert pg_pristine.dsn.split(":")[2].split("@")[0] not in out.output  # the password is masked


def test_newest_run_deleted(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    _a, b, c = _ids(pg)
    n = len(records(runs(pg)[-1]))
    runs(pg)[-1].unlink()
    assert verify(pg, pristine.signers).exit_code == 0  # the files alone look fine
    out = failed(pg, pristine.signers, "--audit-dsn", pg_pristine.dsn)
    assert f"run {c} ({n} records) is in the audit database" in out
    assert f"but missing from the audit directory (it follows run {b})" in out


def test_newest_two_runs_deleted(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    a, b, c = _ids(pg)
    for p in runs(pg)[1:]:
        p.unlink()
    out = failed(pg, pristine.signers, "--audit-dsn", pg_pristine.dsn)
    assert f"run {b} (" in out and f"(it follows run {a})" in out
    assert f"run {c} (" in out and f"(it follows run {b})" in out


def test_middle_run_deleted(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    a, b, _c = _ids(pg)
    runs(pg)[1].unlink()
    out = failed(pg, pristine.signers, "--audit-dsn", pg_pristine.dsn)
    assert f"run {b} (" in out and f"missing from the audit directory (it follows run {a})" in out


def test_oldest_run_archived_is_a_warning(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    a, _b, _c = _ids(pg)
    runs(pg)[0].unlink()
    out = _check(pg, pristine, pg_pristine.dsn)
    assert out.exit_code == 0, out.output
    assert f"run {a} (" in out.output and "whose chain starts after it (older runs archived?)" in out.output


def test_newest_run_cut_short(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    newest = runs(pg)[-1]
    ls = lines(newest)
    put(newest, ls[:4])
    out = failed(pg, pristine.signers, "--audit-dsn", pg_pristine.dsn)
    assert f"records 5-{len(ls)} in the audit database" in out and "the file was cut short" in out


def test_record_rewritten_consistently(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    newest = runs(pg)[-1]
    recs = records(newest)
    recs[3]["ts"] = "2001-01-01T00:00:00.000000Z"
    put(newest, rehash_from(recs, 3))
    out = failed(pg, pristine.signers, "--audit-dsn", pg_pristine.dsn)
    assert f"records 4-{len(recs)} differ from the audit database's copy (the run file was altered)" in out


def test_directory_rolled_back_and_written_on(
    pristine: Pristine, pg_pristine: PgTrail, tmp_path: Path
) -> None:
    """A backup put back, then a new run: the run lost in between is still in the table. (A chain of
    its own: runs written here must not extend the shared trail the other tests copy.)"""
    d, old = tmp_path / "fork", tmp_path / "backup"
    exec_run(pristine.project, d, pristine.key, "--audit-dsn", pg_pristine.dsn)
    shutil.copytree(d, old)
    exec_run(pristine.project, d, pristine.key, "--audit-dsn", pg_pristine.dsn)
    lost = _ids(d)[-1]
    shutil.rmtree(d)
    shutil.copytree(old, d)
    exec_run(pristine.project, d, pristine.key, "--audit-dsn", pg_pristine.dsn)
    assert verify(d, pristine.signers, "--no-local-head").exit_code == 0
    out = failed(d, pristine.signers, "--audit-dsn", pg_pristine.dsn, "--no-local-head")
    assert f"run {lost} (" in out and f"(it follows run {_ids(old)[-1]})" in out


def test_run_written_without_the_sink_is_a_warning(
    pg: Path, pristine: Pristine, pg_pristine: PgTrail
) -> None:
    exec_run(pristine.project, pg, pristine.key)  # no --audit-dsn this time
    out = _check(pg, pristine, pg_pristine.dsn)
    assert out.exit_code == 0, out.output
    assert "1 run(s) of the directory are not in the audit database" in out.output


def test_database_row_altered_behind_the_triggers(
    pristine: Pristine, pg_pristine: PgTrail, tmp_path: Path
) -> None:
    d = tmp_path / "own"
    exec_run(pristine.project, d, pristine.key, "--audit-dsn", pg_pristine.dsn)
    run_id = _ids(d)[0]
    with psycopg.connect(pg_pristine.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE runbook_audit DISABLE TRIGGER USER")
        try:
            conn.execute(
                "UPDATE runbook_audit SET record = jsonb_set(record, '{ts}', '\"2001-01-01T00:00:00Z\"') "
                "WHERE run_id = %s AND seq = 2",
                (run_id,),
            )
        finally:
            conn.execute("ALTER TABLE runbook_audit ENABLE TRIGGER USER")
    out = failed(d, pristine.signers, "--audit-dsn", pg_pristine.dsn)
    assert f"run {run_id}: database row 2: its record does not hash to its hash column" in out


def test_unreachable_database(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    bad = pg_pristine.dsn.replace(pg_pristine.dsn.split(":")[2].split("@")[0], "wrong-pw-123")
    out = _check(pg, pristine, bad)
    assert out.exit_code == 1 and "cannot read the audit database" in out.output
    assert "wrong-pw-123" not in out.output


def test_missing_table(pg: Path, pristine: Pristine, pg_pristine: PgTrail) -> None:
    out = verify(pg, pristine.signers, "--dsn", pg_pristine.dsn, "--audit-table", "no_such_table")
    assert out.exit_code == 1 and "has no table no_such_table" in out.output


def test_dsn_with_a_single_run_file_is_a_usage_error(
    pg: Path, pristine: Pristine, pg_pristine: PgTrail
) -> None:
    out = _check(runs(pg)[0], pristine, pg_pristine.dsn)
    assert out.exit_code == 2 and "--audit-dsn cross-checks an audit directory" in out.output
