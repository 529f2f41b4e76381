from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from runbook.audit.chain import record_hash
from runbook.audit.keys import Signer
from runbook.audit.sinks.postgres import PostgresSink
from runbook.audit.writer import AuditWriter
from runbook.errors import AuditError
from runbook.execute.events import Event
from runbook.render.secrets import mask_credentials
from tests.fixtures.postgres import PgServer

from .helpers import records, run_events, write_run

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_postgres_sink_mirrors_records_and_is_append_only(
    tmp_path: Path, key: Signer, postgres_server: PgServer
) -> None:
    table = "audit_t1"
    path = write_run(
        tmp_path, "pg-run", key, steps=5, sinks=[PostgresSink(postgres_server.dsn, table, batch=3)]
    )
    local = records(path)
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT run_id, seq, event, hash, prev, record FROM {table} ORDER BY seq"
        ).fetchall()
        assert [r[1] for r in rows] == [r["seq"] for r in local]
        for (run_id, _seq, event, h, prev, rec), want in zip(rows, local, strict=True):
            assert (run_id, event, h, prev) == (want["run_id"], want["event"], want["hash"], want["prev"])
            assert rec == want and record_hash(rec) == h  # jsonb round trip keeps the hash reproducible
        for stmt in (
            f"UPDATE {table} SET event = 'x' WHERE seq = 1",
            f"DELETE FROM {table} WHERE seq = 1",
            f"TRUNCATE {table}",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(stmt)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                f"INSERT INTO {table} (run_id, seq, ts, event, hash, prev, record) "
                "VALUES ('pg-run', 1, now(), 'x', 'h', 'p', '{}')"
            )
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (len(local),)


def test_second_sink_reuses_table_and_schema_qualified_name(
    tmp_path: Path, key: Signer, postgres_server: PgServer
) -> None:
    for run_id in ("a", "b"):
        write_run(tmp_path, run_id, key, sinks=[PostgresSink(postgres_server.dsn, "team.audit")])
    with psycopg.connect(postgres_server.dsn) as conn:
        counts = conn.execute("SELECT run_id, count(*) FROM team.audit GROUP BY run_id ORDER BY 1").fetchall()
    assert [c[0] for c in counts] == ["a", "b"]


def test_connection_errors_are_clear_and_hide_the_password(postgres_server: PgServer) -> None:
    bad = postgres_server.dsn.replace(postgres_server.password, "wrong-pw-123")
    with pytest.raises(AuditError) as exc:
        PostgresSink(bad, connect_timeout=5)
    text = str(exc.value)
    assert "cannot connect to the audit database" in text and "wrong-pw-123" not in text
    assert postgres_server.password not in mask_credentials(postgres_server.dsn)
    assert "password=***" in mask_credentials("host=x password=abc user=y")


def test_database_lost_mid_run_is_recorded_not_fatal(
    tmp_path: Path, key: Signer, postgres_server: PgServer
) -> None:
    sink = PostgresSink(postgres_server.dsn, "audit_lost")
    writer = AuditWriter(tmp_path, signing_key=key, sinks=[sink])
    events = run_events("lost", 3)
    writer(events[0])
    sink._conn.close()  # the connection drops (server restart, network)
    for event in events[1:]:
        writer(event)
    writer.close()
    recs = records(writer.path)
    errors = [r for r in recs if r["event"] == "audit.sink_error"]
    assert len(errors) == 1 and errors[0]["data"]["sink"] == "PostgresSink"
    assert postgres_server.password not in writer.path.read_text()
    assert recs[-1]["final"] is True
    writer(Event("step.output", "lost"))  # closed writer ignores late events
