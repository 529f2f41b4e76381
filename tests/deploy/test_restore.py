"""postgres.restore and migrate's undo from a backup bring the database back exactly to the dump:
objects of every kind created since are dropped, in the restore's transaction, without superuser."""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest

from tests.deploy.conftest import Runner
from tests.deploy.test_postgres import sql, write

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

_NOT_SYSTEM = "NOT LIKE 'pg\\_%' AND {0} <> 'information_schema'"
CATALOG = {
    "schemas": "SELECT nspname FROM pg_namespace WHERE nspname "
    + _NOT_SYSTEM.format("nspname")
    + " ORDER BY 1",
    "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
    "functions": "SELECT p.oid::regprocedure::text, p.prokind, p.prosrc FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname "
    + _NOT_SYSTEM.format("n.nspname")
    + " ORDER BY 1",
    # types, minus table row types and arrays
    "types": "SELECT t.oid::regtype::text, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
    "WHERE n.nspname " + _NOT_SYSTEM.format("n.nspname") + " AND NOT EXISTS "
    "(SELECT 1 FROM pg_type e WHERE e.typarray = t.oid) AND (t.typrelid = 0 OR "
    "(SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') ORDER BY 1",
    "relations": "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
    "ON n.oid = c.relnamespace WHERE n.nspname " + _NOT_SYSTEM.format("n.nspname") + " ORDER BY 1, 2",
    "columns": "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
    "WHERE table_schema " + _NOT_SYSTEM.format("table_schema") + " ORDER BY 1, 2, 3",
    "triggers": "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
    "sequences": "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
    "large_objects": "SELECT count(*) FROM pg_largeobject_metadata",
}
DUMPED = """
CREATE EXTENSION hstore;
CREATE TABLE items (id serial PRIMARY KEY, name text, attrs hstore);
INSERT INTO items (name, attrs) VALUES ('a', 'k=>1'), ('b', NULL);
CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1';
CREATE TYPE mood AS ENUM ('ok', 'bad');
CREATE VIEW v AS SELECT id, name FROM items;
CREATE SEQUENCE counter;
SELECT nextval('counter'), nextval('counter');
CREATE SCHEMA kept;
CREATE TABLE kept.t (x int);
INSERT INTO kept.t VALUES (1), (2);
"""
CREATED_SINCE = """
CREATE EXTENSION citext;
CREATE FUNCTION g() RETURNS int LANGUAGE sql AS 'SELECT 42';
CREATE FUNCTION f(x text) RETURNS text LANGUAGE sql AS 'SELECT x';
CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 100';
CREATE PROCEDURE pr() LANGUAGE sql AS 'SELECT 1';
CREATE AGGREGATE total(int) (sfunc = int4pl, stype = int);
CREATE TYPE mood2 AS ENUM ('meh');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE VIEW v2 AS SELECT count(*) FROM items;
CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one;
CREATE SEQUENCE seq2;
SELECT setval('counter', 99);
CREATE SCHEMA fresh;
CREATE TABLE fresh.t (y citext);
CREATE FUNCTION fresh.h() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN NEW.name := upper(NEW.name); RETURN NEW; END';
CREATE TRIGGER stamp BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION stamp();
ALTER TABLE kept.t ADD COLUMN z mood2;
INSERT INTO kept.t VALUES (3);
DELETE FROM items WHERE id = 1;
SELECT lo_create(0);
"""


def catalog(dsn: str) -> dict[str, list]:
    state = {name: sql(dsn, text) for name, text in CATALOG.items()}
    state["items"] = sql(dsn, "SELECT id, name, attrs::text FROM items ORDER BY id")
    state["kept"] = sql(dsn, "SELECT * FROM kept.t ORDER BY 1")
    state["f(1)"] = sql(dsn, "SELECT f(1)")
    return state


@pytest.fixture
def app_db(postgres_server) -> str:
    """A fresh database owned by a fresh non-superuser role; its DSN (as that role)."""
    role, password, name = (
        "app_" + secrets.token_hex(3),
        "pw-" + secrets.token_hex(8),
        "a_" + secrets.token_hex(4),
    )
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {name} OWNER {role}")
    base = postgres_server.dsn.rsplit("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql://{role}:{password}@{base}/{name}"


@pytest.mark.parametrize("who", ["superuser", "app_role"])
def test_restore_brings_back_exactly_the_dumped_objects(
    runner: Runner, who: str, tmp_path: Path, request
) -> None:
    dsn = request.getfixturevalue("db" if who == "superuser" else "app_db")
    sql(dsn, DUMPED)
    dump = runner.run("postgres.backup", {"dsn": dsn, "dest": str(tmp_path / "db.dump")})
    assert dump.ok, dump.msg
    before = catalog(dsn)
    sql(dsn, CREATED_SINCE)
    assert catalog(dsn) != before

    out = runner.run(
        "postgres.restore", {"dsn": dsn, "src": dump.data["path"], "checksum": dump.data["sha256"]}
    )
    assert out.ok, out.msg
    after = catalog(dsn)
    for key in before:
        assert after[key] == before[key], key
    extras = set(out.data["dropped"])
    assert {
        "extension citext",
        "schema fresh",
        "function public.g()",
        "procedure public.pr()",
        "type public.mood2",
        "view public.v2",
        "sequence public.seq2",
        "function public.stamp()",
    } <= extras
    assert not extras & {"table public.items", "schema kept", "view public.v", "extension hstore"}
    assert "created since the dump" in out.msg

    again = runner.run("postgres.restore", {"dsn": dsn, "src": dump.data["path"]})  # idempotent
    assert again.ok and again.data["dropped"] == [], again.msg
    assert catalog(dsn) == before


def test_restore_that_cannot_drop_an_object_changes_nothing(
    runner: Runner, app_db: str, postgres_server, tmp_path: Path
) -> None:
    sql(app_db, "CREATE TABLE keep (v int); INSERT INTO keep VALUES (1)")
    dump = runner.run("postgres.backup", {"dsn": app_db, "dest": str(tmp_path / "db.dump")})
    assert dump.ok, dump.msg
    sql(app_db, "INSERT INTO keep VALUES (2); CREATE FUNCTION mine() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    admin = postgres_server.dsn.rsplit("/", 1)[0] + "/" + app_db.rsplit("/", 1)[1]
    sql(admin, "CREATE SCHEMA audit_trail")  # owned by the superuser: the app role cannot drop it
    state = catalog_of(app_db)
    out = runner.run("postgres.restore", {"dsn": app_db, "src": dump.data["path"]})
    assert not out.ok and "must be owner of schema audit_trail" in out.msg and "nothing changed" in out.msg
    assert "limit the restore with schemas" in out.msg
    assert catalog_of(app_db) == state and sql(app_db, "SELECT count(*) FROM keep") == [(2,)]
    out = runner.run("postgres.restore", {"dsn": app_db, "src": dump.data["path"], "schemas": ["public"]})
    assert out.ok and out.data["dropped"] == ["function public.mine()"], out.msg
    assert sql(app_db, "SELECT * FROM keep") == [(1,)]


def catalog_of(dsn: str) -> dict[str, list]:
    return {name: sql(dsn, text) for name, text in CATALOG.items()}


def test_migrate_undo_from_backup_removes_every_new_object(
    runner: Runner, app_db: str, tmp_path: Path
) -> None:
    sql(app_db, "CREATE TABLE keep (v int); INSERT INTO keep VALUES (1)")
    dump = runner.run("postgres.backup", {"dsn": app_db, "dest": str(tmp_path / "pre.dump")})
    assert dump.ok, dump.msg
    before = catalog_of(app_db)
    d = write(tmp_path / "m", {"001_everything.sql": (
        "CREATE SCHEMA reports;\nCREATE TYPE status AS ENUM ('new', 'done');\n"
        "CREATE FUNCTION reports.total() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM keep';\n"
        "CREATE VIEW keep_view AS SELECT v FROM keep;\nCREATE SEQUENCE tickets;\n"
        "CREATE FUNCTION bump(int) RETURNS int LANGUAGE sql AS 'SELECT $1 + 1';\n")})  # fmt: skip
    args = {"dsn": app_db, "dir": str(d), "backup": dump.data["path"], "backup_checksum": dump.data["sha256"]}
    assert runner.run("postgres.migrate", args).ok
    back = runner.undo("postgres.migrate", args, runner.last.snapshots[0])
    assert back.ok and "restored backup" in back.msg, back.msg
    assert catalog_of(app_db) == before
    assert sql(app_db, "SELECT * FROM keep") == [(1,)]


def test_restore_limited_to_schemas_keeps_the_others(runner: Runner, db: str, tmp_path: Path) -> None:
    sql(db, "CREATE SCHEMA kept; CREATE TABLE kept.t (x int); CREATE TABLE items (id int)")
    dump = runner.run("postgres.backup", {"dsn": db, "dest": str(tmp_path / "db.dump")})
    assert dump.ok, dump.msg
    sql(db, "CREATE SCHEMA other; CREATE TABLE other.t (y int); CREATE FUNCTION kept.k() RETURNS int "
            "LANGUAGE sql AS 'SELECT 1'; CREATE TYPE color AS ENUM ('red')")  # fmt: skip
    dry = Runner(dry_run=True).run("postgres.restore", {"dsn": db, "src": dump.data["path"]})
    assert dry.ok and "first dropping everything the dump does not contain" in dry.msg, dry.msg
    assert sql(db, "SELECT to_regtype('color') IS NOT NULL") == [(True,)]

    out = runner.run("postgres.restore", {"dsn": db, "src": dump.data["path"], "schemas": ["public"]})
    assert out.ok, out.msg
    assert set(out.data["dropped"]) == {"function kept.k()", "type public.color"}  # kept: in the dump
    assert sql(db, "SELECT to_regclass('other.t') IS NOT NULL, to_regclass('kept.t') IS NOT NULL") == [
        (True, True)
    ]
    out = runner.run("postgres.restore", {"dsn": db, "src": dump.data["path"], "drop_extra": False})
    assert out.ok and out.data["dropped"] == [] and sql(db, "SELECT to_regnamespace('other')") != [(None,)]


@pytest.mark.ssh
@pytest.mark.parametrize("mode", ["persistent", "exec"])
def test_exact_restore_over_ssh(mode: str, db: str, tmp_path: Path, ssh_lab) -> None:
    """The wipe SQL goes to psql on the host's stdin: over SSH too, in both shell modes."""
    from runbook.execute.transports.base import HostSpec
    from runbook.execute.transports.ssh import SSHTransport

    host = ssh_lab.hosts[0]
    spec = HostSpec(name=host.name, address=host.address, port=host.port, user="root",
                    private_key_file=str(ssh_lab.key))  # fmt: skip
    r = Runner()
    r.transport = SSHTransport(spec, persistent_shell=mode == "persistent", known_hosts=str(ssh_lab.known_hosts),
                               ssh_config="/dev/null")  # fmt: skip
    r.transport.connect()
    try:
        sql(db, DUMPED)
        dump = r.run("postgres.backup", {"dsn": db, "dest": str(tmp_path / "db.dump")})
        assert dump.ok, dump.msg
        before = catalog(db)
        sql(db, CREATED_SINCE)
        out = r.run(
            "postgres.restore", {"dsn": db, "src": dump.data["path"], "checksum": dump.data["sha256"]}
        )
        assert out.ok and "schema fresh" in out.data["dropped"], out.msg
        assert catalog(db) == before
    finally:
        r.transport.close()
