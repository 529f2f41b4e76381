"""PostgreSQL sink: the same records in a team-wide, append-only table (psycopg 3).

Table (created if absent)::

    run_id text, seq bigint, ts timestamptz, event text, hash text, prev text, record jsonb,
    PRIMARY KEY (run_id, seq)

with triggers that RAISE on UPDATE and DELETE (row level) and TRUNCATE (statement level). Records
are inserted in batches at every ``sync`` (step boundaries and seals) or every ``batch`` records.
``record`` holds only canonical JSON types (no floats), so re-canonicalising a row's ``record``
reproduces its ``hash``. The triggers stop accidents and ordinary roles; a superuser or the
table's owner can still drop them -- grant the writing role INSERT and SELECT only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runbook.audit.records import mask_url_passwords
from runbook.errors import AuditError

_KV_PASSWORD = re.compile(r"(?i)(password\s*=\s*)('[^']*'|\S+)")


def safe_dsn(dsn: str) -> str:
    """The DSN with any password masked (for messages)."""
    return _KV_PASSWORD.sub(r"\1***", mask_url_passwords(dsn))


class PostgresSink:
    def __init__(
        self, dsn: str, table: str = "runbook_audit", *, batch: int = 500, connect_timeout: int = 10
    ):
        import psycopg
        from psycopg import sql

        self._psycopg = psycopg
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise AuditError(f"bad audit table name {table!r}", hint="use NAME or SCHEMA.NAME")
        self.table = sql.Identifier(*parts)
        schema = [sql.Identifier(parts[0])] if len(parts) == 2 else []
        self._func = sql.Identifier(*(parts[:1] if len(parts) == 2 else []), "runbook_audit_append_only")
        self._batch = max(1, batch)
        self._pending: list[tuple[Any, ...]] = []
        self._dsn_label = safe_dsn(dsn)
        try:
            self._conn = psycopg.connect(
                dsn, connect_timeout=connect_timeout, application_name="runbook-audit", autocommit=True
            )
        except psycopg.Error as exc:
            raise AuditError(
                f"cannot connect to the audit database {self._dsn_label}: {self._clean(exc)}",
                hint="check --audit-dsn / the database is reachable, or run without the PostgreSQL sink",
            )
        try:
            self._ensure_table(sql, schema, "_".join(parts))
        except psycopg.Error as exc:
            self._conn.close()
            raise AuditError(f"cannot prepare audit table {table} in {self._dsn_label}: {self._clean(exc)}")
        self._insert = sql.SQL(
            "INSERT INTO {} (run_id, seq, ts, event, hash, prev, record) "
            "VALUES (%s, %s, %s::timestamptz, %s, %s, %s, %s::jsonb)"
        ).format(self.table)

    def _clean(self, exc: Exception) -> str:
        return safe_dsn(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)

    def _ensure_table(self, sql: Any, schema: list[Any], base: str) -> None:
        t, fn = self.table, self._func
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"runbook_audit:{base}",))
            if schema:
                self._conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema[0]))
            self._conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, seq bigint NOT NULL, "
                    "ts timestamptz NOT NULL, event text NOT NULL, hash text NOT NULL, prev text NOT NULL, "
                    "record jsonb NOT NULL, PRIMARY KEY (run_id, seq))"
                ).format(t)
            )
            self._conn.execute(
                sql.SQL(
                    "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'runbook audit table %.% is append-only: % refused', "
                    "TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege'; "
                    "END $$"
                ).format(fn)
            )
            row_trg = sql.Identifier(f"{base}_no_update_delete")
            stmt_trg = sql.Identifier(f"{base}_no_truncate")
            self._conn.execute(
                sql.SQL(
                    "CREATE OR REPLACE TRIGGER {} BEFORE UPDATE OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
                ).format(row_trg, t, fn)
            )
            self._conn.execute(
                sql.SQL(
                    "CREATE OR REPLACE TRIGGER {} BEFORE TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()"
                ).format(stmt_trg, t, fn)
            )

    def write(self, record: Mapping[str, Any], line: bytes) -> None:
        self._pending.append(
            (
                record["run_id"],
                record["seq"],
                record["ts"],
                record["event"],
                record["hash"],
                record["prev"],
                line.decode("utf-8").rstrip("\n"),
            )
        )
        if len(self._pending) >= self._batch:
            self.sync()

    def sync(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.executemany(self._insert, rows)
        except self._psycopg.Error as exc:
            raise AuditError(f"audit database {self._dsn_label}: {self._clean(exc)}")

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._conn.close()
