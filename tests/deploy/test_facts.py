"""Pure parsers behind compose.* and postgres.* (no services needed)."""

from __future__ import annotations

import json

import pytest

from runbook.facts.compose import (
    MIB,
    budget_table,
    memory_limits,
    parse_inspect,
    parse_memory,
    problems_of,
)
from runbook.facts.postgres import created_since, parse_toc, split_dsn, toc_schemas, wipe_sql
from runbook.kinds.postgres import read_migrations
from runbook.render.secrets import mask_credentials


@pytest.mark.parametrize(
    ("value", "expected"),
    [("500m", 500 * MIB), ("1g", 1024 * MIB), ("512MB", 512 * MIB), ("1.5GiB", 1536 * MIB),
     (1048576, MIB), ("100k", 102400), ("2b", 2), ("12", 12), ("300M", 300 * MIB)],
)  # fmt: skip
def test_parse_memory(value, expected) -> None:
    assert parse_memory(value) == expected


@pytest.mark.parametrize("value", ["lots", "${API_MEM}", "5 zb", True, None, "1i"])
def test_parse_memory_rejects(value) -> None:
    with pytest.raises(ValueError):
        parse_memory(value)


def test_memory_limits_replicas_and_both_forms() -> None:
    doc = {
        "services": {
            "api": {"deploy": {"replicas": 2, "resources": {"limits": {"memory": "500m"}}}},
            "worker": {"mem_limit": "1g", "scale": 3},
            "cron": {"image": "x"},
        }
    }
    assert memory_limits(doc) == {"api": (500 * MIB, 2), "worker": (1024 * MIB, 3), "cron": (None, 1)}
    table, allocated = budget_table(
        memory_limits(doc), {"postgres": 800 * MIB}, 8192 * MIB, 500 * MIB, "total_mb"
    )
    assert allocated == (1000 + 3072 + 800) * MIB
    assert "api x2" in table and "NO MEMORY LIMIT" in table and "(outside compose)" in table
    with pytest.raises(ValueError, match="differ"):
        memory_limits(
            {"services": {"a": {"mem_limit": "1g", "deploy": {"resources": {"limits": {"memory": "2g"}}}}}}
        )
    with pytest.raises(ValueError, match="services"):
        memory_limits({"version": "3"})


def _inspect_line(**state) -> str:
    labels = {"com.docker.compose.service": "api", "com.docker.compose.oneoff": "False"}
    base = {"Status": "running", "Running": True, "Restarting": False, "OOMKilled": False, "ExitCode": 0}
    base.update(state)
    fields = ["abc", "/p-api-1", labels, "runbook-demo:v1", "sha256:1", base, 0, 500 * MIB]
    return "\t".join(json.dumps(f) for f in fields)


def test_inspect_and_problems() -> None:
    (c,) = parse_inspect(_inspect_line(OOMKilled=True, Health={"Status": "unhealthy"}))
    assert c.name == "p-api-1" and c.service == "api" and c.running
    assert problems_of(c, 0) == [
        "api (p-api-1): OOM-killed (memory limit 500 MB)",
        "api (p-api-1): unhealthy",
    ]
    (c,) = parse_inspect(_inspect_line(Status="exited", Running=False, ExitCode=3))
    assert problems_of(c, 0) == ["api (p-api-1): exited with code 3"]
    (c,) = parse_inspect(_inspect_line(Status="restarting", Restarting=True, ExitCode=1))
    assert not c.running and "restarting" in problems_of(c, None)[0]


def test_dsn_passwords_never_shown() -> None:
    assert split_dsn("postgresql://app:s%40cret@db:5432/app") == ("postgresql://app@db:5432/app", "s@cret")
    assert split_dsn("postgres://app@h/db?sslmode=disable&password=xx") == (
        "postgres://app@h/db?sslmode=disable",
        "xx",
    )
    assert split_dsn("host=h password='a b' dbname=x") == ("host=h dbname=x", "a b")
    assert split_dsn("host=h dbname=x") == ("host=h dbname=x", None)
    assert mask_credentials("postgresql://app:pw@db/app") == "postgresql://app:***@db/app"
    assert "pw" not in mask_credentials("host=h password=pw user=u")
    assert mask_credentials("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"


def test_toc_and_what_a_restore_dropped() -> None:
    toc = parse_toc(
        ";\n; Archive created at ...\n"
        "7; 2615 16408 SCHEMA - kept app\n"
        "2; 3079 16436 EXTENSION - hstore \n"
        "3484; 0 0 COMMENT - EXTENSION hstore \n"
        "215; 1259 16385 TABLE public widgets app\n"
        "216; 1259 16384 SEQUENCE public widgets_id_seq app\n"
        "217; 0 0 SEQUENCE OWNED BY public widgets_id_seq app\n"
        "3321; 0 16385 TABLE DATA public widgets app\n"
        "218; 1259 16390 MATERIALIZED VIEW public stats app\n"
        "3473; 0 16390 MATERIALIZED VIEW DATA public stats app\n"
        "225; 1255 16395 FUNCTION public add(integer, integer) app\n"
        "3476; 2613 16541 BLOB - 16541 app\n"
        "3477; 0 0 BLOBS - BLOBS \n"
        "219; 1259 16409 TABLE kept t app\n"
    )
    assert toc == {
        ("SCHEMA", "-", "kept"),
        ("EXTENSION", "-", "hstore"),
        ("TABLE", "public", "widgets"),
        ("SEQUENCE", "public", "widgets_id_seq"),
        ("MATERIALIZED VIEW", "public", "stats"),
        ("FUNCTION", "public", "add(integer, integer)"),
        ("BLOB", "-", "16541"),
        ("TABLE", "kept", "t"),
    }
    assert toc_schemas(toc) == {"kept", "public"}
    dropped = [
        ("function", "public", "add(integer,integer)", "public.add(integer,integer)"),
        ("function", "public", "g()", "public.g()"),
        ("table", "public", "widgets", "public.widgets"),
        ("view", "public", '"we""ird"', 'public."we""ird"'),
        ("table", "kept", "t", "kept.t"),
        ("extension", "-", "hstore", "hstore"),
        ("extension", "-", "citext", "citext"),
        ("schema", "-", "kept", "kept"),
        ("schema", "-", "fresh", "fresh"),
        ("large object", "-", "16541", "16541"),
        ("large object", "-", "16542", "16542"),
    ]
    stderr = "".join(f"psql:<stdin>:{i}: NOTICE:  runbook-dropped: " + "\t".join(d) + "\n"
                     for i, d in enumerate(dropped)) + "NOTICE:  drop cascades to table x\n"  # fmt: skip
    assert created_since(stderr, toc) == (
        11,
        ["function public.g()", 'view public."we""ird"', "extension citext", "schema fresh",
         "large object 16542"],
    )  # fmt: skip


def test_wipe_sql_quotes_the_scope() -> None:
    assert "scope text[] := NULL::text[];" in wipe_sql(None)
    assert "scope text[] := ARRAY[E'public', E'o''k\\\\x']::text[];" in wipe_sql(["public", "o'k\\x"])
    assert "@SCOPE@" not in wipe_sql(None)


def test_read_migrations(tmp_path) -> None:
    for name in ("010_b.sql", "002_a.sql", "002_a.down.sql", "notes.txt"):
        (tmp_path / name).write_text(f"-- {name}\n")
    migs, problems = read_migrations(tmp_path)
    assert problems == []
    assert [(m["version"], m["name"], bool(m["down"])) for m in migs] == [
        ("002", "a", True),
        ("010", "b", False),
    ]
    (tmp_path / "002_other.sql").write_text("x")
    (tmp_path / "bad.sql").write_text("x")
    (tmp_path / "099_orphan.down.sql").write_text("x")
    _, problems = read_migrations(tmp_path)
    assert len(problems) == 3
