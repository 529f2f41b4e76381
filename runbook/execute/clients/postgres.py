"""PostgreSQL client (psycopg 3) for the postgres.* step kinds.

The DSN's host:port is reached through ``transport.tunnel`` (identity on the local transport, an SSH
direct-tcpip channel remotely), so a DSN is always written from the target host's point of view.
Operations return plain JSON-able dicts; expected failures come back as ``{"ok": False, "error": ...}``
(with the SQL error's position turned into a line number) rather than raising. Passwords never appear
in what is returned.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from runbook.execute.transports.base import Transport
from runbook.render.secrets import MASK

CONNECT_TIMEOUT = 10


def _info(dsn: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}


def _where(info: dict[str, str]) -> str:
    return f"{info.get('host') or 'local socket'}:{info.get('port') or 5432}/{info.get('dbname') or '?'}"


@contextlib.contextmanager
def connect(
    params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event
) -> Iterator[Any]:
    """A psycopg connection to params["dsn"] as seen from the host; cancelled with ``cancel``."""
    import psycopg

    info = _info(str(params["dsn"]))
    host = info.get("host", "")
    if host and not host.startswith("/") and "," not in host:
        local_host, local_port = stack.enter_context(transport.tunnel(host, int(info.get("port") or 5432)))
        info.update(host=str(local_host), port=str(local_port))
        info.pop("hostaddr", None)
    elif transport.spec.connection != "local":
        raise ValueError("the DSN needs a TCP host (host=127.0.0.1) to be reached through an SSH tunnel")
    info.setdefault("connect_timeout", str(params.get("connect_timeout", CONNECT_TIMEOUT)))
    info.setdefault("application_name", "runbook")
    conn = psycopg.connect(**info, autocommit=True)
    done = threading.Event()

    def watch() -> None:  # Ctrl-C / step timeout: cancel the running statement
        while not done.is_set():
            if cancel.wait(0.2):
                with contextlib.suppress(Exception):
                    conn.cancel()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield conn
    finally:
        done.set()
        conn.close()


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _error(exc: Exception, sql: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    import psycopg

    out: dict[str, Any] = {
        "ok": False,
        "error": str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
    }
    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        out["sqlstate"] = diag.sqlstate
        if diag.message_primary:
            out["error"] = diag.message_primary
        if diag.statement_position and sql:
            pos = int(diag.statement_position)
            out["line"] = sql.count("\n", 0, max(pos - 1, 0)) + 1
        if isinstance(exc, psycopg.OperationalError) and params is not None:
            out["error"] = f"cannot connect to {_where(_info(str(params['dsn'])))}: {out['error']}"
    secret = _info(str(params["dsn"])).get("password") if params else None
    if secret:
        out["error"] = out["error"].replace(secret, MASK)
    return out


def _guard(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def wrapped(
        params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event
    ):
        import psycopg

        try:
            return fn(params, transport, stack, cancel)
        except (psycopg.Error, ValueError, OSError) as exc:
            return _error(exc, params.get("sql"), params)

    return wrapped


@_guard
def query(params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event):
    """{dsn, sql, params?, readonly: true} -> {ok, columns, rows, rowcount, status}."""
    with connect(params, transport, stack, cancel) as conn:
        conn.read_only = bool(params.get("readonly", True))
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(params["sql"], params.get("params") or None)
            columns = [d.name for d in cur.description] if cur.description else []
            rows = [_jsonable(list(r)) for r in cur.fetchall()] if cur.description else []
            return {
                "ok": True,
                "columns": columns,
                "rows": rows,
                "rowcount": cur.rowcount,
                "status": cur.statusmessage or "",
            }


def _table(name: str) -> Any:
    from psycopg import sql

    parts = name.split(".", 1)
    return sql.Identifier(*parts)


@_guard
def migrations_applied(
    params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event
):
    """{dsn, table} -> {ok, exists, versions: {version: checksum}} (read-only)."""
    with connect(params, transport, stack, cancel) as conn:
        conn.read_only = True
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (params["table"],))
            row = cur.fetchone()
            if not row or not row[0]:
                return {"ok": True, "exists": False, "versions": {}}
            from psycopg import sql

            cur.execute(
                sql.SQL("SELECT version, checksum FROM {} ORDER BY version").format(_table(params["table"]))
            )
            return {"ok": True, "exists": True, "versions": {str(v): c for v, c in cur.fetchall()}}


TRACKING = """CREATE TABLE IF NOT EXISTS {} (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    run_id text
)"""


def _apply_migration(
    params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event
):
    """{dsn, table, version, name, sql, checksum, direction: up|down, run_id} -> {ok} or {ok: False, error,
    line}. One transaction: the migration's SQL and its row in the tracking table (added or removed)."""
    from psycopg import sql

    table = _table(params["table"])
    with connect(params, transport, stack, cancel) as conn:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql.SQL(TRACKING).format(table))
            if params.get("lock_key") is not None:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (int(params["lock_key"]),))
            try:
                cur.execute(params["sql"])  # no params: simple protocol, several statements, no % parsing
            except Exception as exc:
                raise _MigrationError(exc) from exc
            if params.get("direction", "up") == "up":
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} (version, name, checksum, run_id) VALUES (%s, %s, %s, %s)"
                    ).format(table),
                    (params["version"], params["name"], params["checksum"], params.get("run_id")),
                )
            else:
                cur.execute(sql.SQL("DELETE FROM {} WHERE version = %s").format(table), (params["version"],))
        return {"ok": True}


class _MigrationError(Exception):
    def __init__(self, exc: Exception):
        super().__init__(str(exc))
        self.exc = exc


def migrate(
    params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event
):
    """One migration, up or down (_apply_migration); a failure names the line of its SQL."""
    import psycopg

    try:
        return _apply_migration(params, transport, stack, cancel)
    except _MigrationError as exc:
        return _error(exc.exc, params.get("sql"), params)
    except (psycopg.Error, ValueError, OSError) as exc:
        return _error(exc, None, params)

