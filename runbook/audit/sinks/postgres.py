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

from collections.abc import Mapping
from typing import Any

from runbook.errors import AuditError, require_extra
from runbook.render.secrets import mask_credentials


class PostgresSink:
    def __init__(
        self, dsn: str, table: str = "runbook_audit", *, batch: int = 500, connect_timeout: int = 10
    ):
        require_extra("psycopg", "the PostgreSQL audit sink (--audit-dsn)")
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
        self._dsn_label = mask_credentials(dsn)
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
        return _first_line(exc)

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


class AuditTable:
    """Read side of the sink's table, for ``verify --audit-dsn`` (``crosscheck.DbSource``). Every
    statement is bounded (connect timeout, statement_timeout); rows are streamed, never all held."""

    def __init__(
        self,
        dsn: str,
        table: str = "runbook_audit",
        *,
        connect_timeout: int = 10,
        statement_timeout: int = 120,
    ):
        require_extra("psycopg", "the PostgreSQL audit cross-check (--audit-dsn)")
        import psycopg
        from psycopg import sql

        self._psycopg = psycopg
        self._sql = sql
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise AuditError(f"bad audit table name {table!r}", hint="use NAME or SCHEMA.NAME")
        self.table = sql.Identifier(*parts)
        self.label = f"{mask_credentials(dsn)} table {table}"
        try:
            self._conn = psycopg.connect(
                dsn,
                connect_timeout=connect_timeout,
                application_name="runbook-audit-verify",
                autocommit=True,
                # a peer that goes silent mid-query is given up on, not waited for
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                tcp_user_timeout=30_000,
            )
            self._conn.execute(f"SET statement_timeout = {int(statement_timeout) * 1000}")
            self._conn.execute("SET default_transaction_read_only = on")
            found = self._conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        except psycopg.Error as exc:
            raise AuditError(
                f"cannot read the audit database {mask_credentials(dsn)}: {_first_line(exc)}",
                hint="check --audit-dsn / the database is reachable",
            )
        if not found or found[0] is None:
            self._conn.close()
            raise AuditError(
                f"the audit database {mask_credentials(dsn)} has no table {table}",
                hint="pass the table runs were written to (--audit-table), or run without --audit-dsn",
            )

    def runs(self) -> list[Any]:
        from runbook.audit.crosscheck import DbRun

        q = self._sql.SQL(
            "SELECT f.run_id, f.n, f.lo, f.hi, p.prev, l.hash FROM "
            "(SELECT run_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM {t} GROUP BY run_id) f "
            "LEFT JOIN {t} p ON p.run_id = f.run_id AND p.seq = 1 "
            "JOIN {t} l ON l.run_id = f.run_id AND l.seq = f.hi ORDER BY f.run_id"
        ).format(t=self.table)
        try:
            rows = self._conn.execute(q).fetchall()
        except self._psycopg.Error as exc:
            raise AuditError(f"cannot read the audit database {self.label}: {_first_line(exc)}")
        return [DbRun(str(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4], str(r[5])) for r in rows]

    def load_records(self, runs: Any) -> None:
        """Fill ``hashes`` and ``bad_rows`` of these runs from their rows (record re-hashed)."""
        from runbook.audit.chain import record_hash

        by_id = {r.run_id: r for r in runs}
        if not by_id:
            return
        q = self._sql.SQL(
            "SELECT run_id, seq, hash, prev, event, record::text FROM {} WHERE run_id = ANY(%s) ORDER BY run_id, seq"
        ).format(self.table)
        try:
            with self._conn.transaction(), self._conn.cursor(name="runbook_audit_verify") as cur:
                cur.itersize = 2000
                cur.execute(q, (list(by_id),))
                for run_id, seq, h, prev, event, text in cur:
                    run = by_id[run_id]
                    run.hashes[int(seq)] = h
                    why = _row_problem(seq, h, prev, event, run_id, text, record_hash)
                    if why and len(run.bad_rows) < 20:
                        run.bad_rows.append(f"{seq}: {why}")
        except self._psycopg.Error as exc:
            raise AuditError(f"cannot read the audit database {self.label}: {_first_line(exc)}")

    def close(self) -> None:
        self._conn.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return mask_credentials(text.splitlines()[0] if text else type(exc).__name__)


def _row_problem(seq: int, h: str, prev: str, event: str, run_id: str, text: str, rehash: Any) -> str:
    import json

    try:
        rec = json.loads(text)
    except (ValueError, RecursionError):
        return "record is not JSON"
    if not isinstance(rec, dict):
        return "record is not an object"
    cols = {"seq": seq, "hash": h, "prev": prev, "event": event, "run_id": run_id}
    off = [k for k, v in cols.items() if rec.get(k) != v]
    if off:
        return f"its {', '.join(off)} column(s) disagree with its record"
    try:
        if rehash(rec) != h:
            return "its record does not hash to its hash column"
    except (TypeError, ValueError, RecursionError):
        return "its record cannot be hashed"
    return ""
