"""postgres.* and redis.ping through the real Driver against real PostgreSQL 15 and Redis servers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from tests.deploy.conftest import Runner

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def sql(dsn: str, text: str, params=None):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description else None


def schema(dsn: str) -> list[tuple]:
    return sql(
        dsn,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY 1, 2",
    )


def no_secret(out, password: str) -> None:
    for text in (out.msg, out.command or "", out.stdout, out.stderr, repr(out.data)):
        assert password not in text


def write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


# ------------------------------------------------------------------------------------------ query


def test_query_expectations_and_masking(runner: Runner, db: str, postgres_server) -> None:
    out = runner.run("postgres.query", {"dsn": db, "sql": "SELECT 1", "expect": 1})
    assert out.ok and out.data["value"] == 1, out.msg
    assert ":***@" in out.command
    no_secret(out, postgres_server.password)
    out = runner.run("postgres.query", {"dsn": db, "sql": "SELECT 1", "expect": 2})
    assert not out.ok and "got 1, expected 2" in out.msg
    out = runner.run(
        "postgres.query",
        {"dsn": db, "sql": "SELECT generate_series(1, %s)", "params": [3], "expect": {"rows": 3}},
    )
    assert out.ok, out.msg
    out = runner.run("postgres.query", {"dsn": db, "sql": "SHOW max_connections", "expect": {"value": "50"}})
    assert out.ok, out.msg


def test_query_is_read_only(runner: Runner, db: str) -> None:
    out = runner.run("postgres.query", {"dsn": db, "sql": "CREATE TABLE nope (id int)"})
    assert not out.ok and "read-only transaction" in out.msg
    assert sql(db, "SELECT to_regclass('nope')") == [(None,)]


def test_query_bad_password_and_unreachable(runner: Runner, db: str, postgres_server) -> None:
    wrong = db.replace(postgres_server.password, "wrong-pw-123456")
    out = runner.run("postgres.query", {"dsn": wrong, "sql": "SELECT 1"})
    assert not out.ok and "password authentication failed" in out.msg
    no_secret(out, "wrong-pw-123456")
    from tests.fixtures.redis import free_port

    out = runner.run(
        "postgres.query", {"dsn": f"postgresql://u:pw1234567@127.0.0.1:{free_port()}/x", "sql": "SELECT 1"}
    )
    assert not out.ok and "cannot connect" in out.msg and "pw1234567" not in out.msg


# ------------------------------------------------------------------------------------------ backup / restore


def test_backup_then_restore_brings_rows_and_schema_back(
    runner: Runner, db: str, tmp_path: Path, postgres_server
) -> None:
    sql(
        db,
        "CREATE TABLE items (id serial PRIMARY KEY, name text); INSERT INTO items (name) VALUES ('a'), ('b')",
    )
    dest = str(tmp_path / "bk" / "db.dump")
    out = runner.run("postgres.backup", {"dsn": db, "dest": dest})
    assert out.ok, out.msg
    assert out.data["sha256"] == hashlib.sha256(Path(dest).read_bytes()).hexdigest()
    assert Path(dest).stat().st_mode & 0o777 == 0o600
    assert "PGPASSWORD=***" in out.command
    no_secret(out, postgres_server.password)
    before = (schema(db), sql(db, "SELECT * FROM items ORDER BY id"))

    again = runner.run("postgres.backup", {"dsn": db, "dest": dest})
    assert not again.ok and "exists" in again.msg

    sql(
        db,
        "INSERT INTO items (name) VALUES ('c'); ALTER TABLE items ADD COLUMN extra int; CREATE TABLE newer (x int)",
    )
    bad = runner.run("postgres.restore", {"dsn": db, "src": dest, "checksum": "0" * 64})
    assert not bad.ok and "not restoring" in bad.msg
    assert sql(db, "SELECT count(*) FROM items") == [(3,)]

    out = runner.run("postgres.restore", {"dsn": db, "src": dest, "checksum": out.data["sha256"]})
    assert out.ok, out.msg
    assert (schema(db), sql(db, "SELECT * FROM items ORDER BY id")) == before
    no_secret(out, postgres_server.password)


def test_failed_pg_dump_leaves_no_file(runner: Runner, tmp_path: Path, postgres_server) -> None:
    bad = postgres_server.dsn.rsplit("/", 1)[0] + "/does_not_exist"
    dest = tmp_path / "x.dump"
    out = runner.run("postgres.backup", {"dsn": bad, "dest": str(dest)})
    assert not out.ok and "does_not_exist" in out.msg
    assert not dest.exists() and not Path(str(dest) + ".partial").exists()
    no_secret(out, postgres_server.password)


# ------------------------------------------------------------------------------------------ migrate

M1 = "CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL);\nINSERT INTO widgets (name) VALUES ('w1');\n"
M1_DOWN = "DROP TABLE widgets;\n"
M2 = "ALTER TABLE widgets ADD COLUMN color text;\nCREATE INDEX widgets_color ON widgets (color);\n"
M2_DOWN = "ALTER TABLE widgets DROP COLUMN color;\n"
BROKEN = "CREATE TABLE gadgets (id int);\n\nSELEC nonsense;\n"


def test_migrate_applies_in_order_once_and_undo_reverts(runner: Runner, db: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"001_widgets.sql": M1, "001_widgets.down.sql": M1_DOWN, "002_color.sql": M2,
                               "002_color.down.sql": M2_DOWN, "README.txt": "ignored"})  # fmt: skip
    before = schema(db)
    out = runner.run("postgres.migrate", {"dsn": db, "dir": str(d)})
    assert out.ok and out.changed and out.data["applied"] == ["001", "002"], out.msg
    snap = runner.last.snapshots[0]
    assert snap["applied_before"] == [] and snap["pending"] == ["001", "002"]
    assert [r[0] for r in sql(db, "SELECT version FROM schema_migrations ORDER BY 1")] == ["001", "002"]
    again = runner.run("postgres.migrate", {"dsn": db, "dir": str(d)})
    assert again.ok and not again.changed and "up to date" in again.msg

    back = runner.undo("postgres.migrate", {"dsn": db, "dir": str(d)}, snap)
    assert back.ok and "reverted 002, 001" in back.msg, back.msg
    assert [r for r in schema(db) if r[0] != "schema_migrations"] == before
    assert sql(db, "SELECT count(*) FROM schema_migrations") == [(0,)]
    assert runner.undo("postgres.migrate", {"dsn": db, "dir": str(d)}, snap).ok  # idempotent


def test_broken_migration_names_file_and_line_and_undo_reverts_the_rest(
    runner: Runner, db: str, tmp_path: Path
) -> None:
    d = write(
        tmp_path / "m", {"001_widgets.sql": M1, "001_widgets.down.sql": M1_DOWN, "002_broken.sql": BROKEN}
    )
    out = runner.run("postgres.migrate", {"dsn": db, "dir": str(d)})
    assert not out.ok
    assert "002_broken.sql:3: syntax error" in out.msg and "001" in out.msg, out.msg
    assert sql(db, "SELECT to_regclass('gadgets')") == [(None,)]  # its transaction rolled back
    back = runner.undo("postgres.migrate", {"dsn": db, "dir": str(d)}, runner.last.snapshots[0])
    assert back.ok and "reverted 001" in back.msg, back.msg
    assert sql(db, "SELECT to_regclass('widgets')") == [(None,)]


def test_missing_down_file_restores_the_backup(runner: Runner, db: str, tmp_path: Path) -> None:
    sql(db, "CREATE TABLE keep (v int); INSERT INTO keep VALUES (1), (2)")
    dump = runner.run("postgres.backup", {"dsn": db, "dest": str(tmp_path / "pre.dump")})
    assert dump.ok, dump.msg
    before = (schema(db), sql(db, "SELECT * FROM keep ORDER BY v"))
    d = write(tmp_path / "m", {"001_widgets.sql": M1, "002_color.sql": M2, "002_color.down.sql": M2_DOWN})
    args = {"dsn": db, "dir": str(d), "backup": dump.data["path"], "backup_checksum": dump.data["sha256"]}
    out = runner.run("postgres.migrate", args)
    assert out.ok, out.msg
    back = runner.undo("postgres.migrate", args, runner.last.snapshots[0])
    assert back.ok and "restored backup" in back.msg, back.msg
    assert (schema(db), sql(db, "SELECT * FROM keep ORDER BY v")) == before
    assert sql(db, "SELECT to_regclass('schema_migrations')") == [(None,)]


def test_missing_down_without_backup_fails_clearly(runner: Runner, db: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"001_widgets.sql": M1})
    assert runner.run("postgres.migrate", {"dsn": db, "dir": str(d)}).ok
    back = runner.undo("postgres.migrate", {"dsn": db, "dir": str(d)}, runner.last.snapshots[0])
    assert not back.ok and "no down file and no backup" in back.msg


def test_bad_migration_names_and_dry_run(db: str, tmp_path: Path) -> None:
    r = Runner(dry_run=True)
    d = write(tmp_path / "bad", {"widgets.sql": M1})
    out = r.run("postgres.migrate", {"dsn": db, "dir": str(d)})
    assert not out.ok and "NNN_name.sql" in out.msg
    d = write(tmp_path / "ok", {"001_widgets.sql": M1})
    out = r.run("postgres.migrate", {"dsn": db, "dir": str(d)})
    assert out.ok and "would apply 001_widgets" in out.msg, out.msg
    assert sql(db, "SELECT to_regclass('widgets')") == [(None,)]


# ------------------------------------------------------------------------------------------ redis


def test_redis_ping_and_maxmemory(runner: Runner, redis_server) -> None:
    out = runner.run("redis.ping", {"url": redis_server.url})
    assert out.ok and "PONG" in out.msg and out.data["maxmemory"] == 64 * 1024 * 1024, out.msg
    assert redis_server.password not in out.msg + (out.command or "")
    assert runner.run("redis.ping", {"url": redis_server.url, "maxmemory_max": 300}).ok
    out = runner.run("redis.ping", {"url": redis_server.url, "maxmemory_max": "32m"})
    assert not out.ok and "maxmemory 64 MB > allowed 32 MB" in out.msg
    wrong = redis_server.url.replace(redis_server.password, "nope-nope-nope")
    out = runner.run("redis.ping", {"url": wrong})
    assert not out.ok and "nope-nope-nope" not in out.msg
