"""PostgreSQL facts: DSNs without their passwords, pg_restore's table of contents, and which
relations a restore must drop (those created after the dump). Pure."""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import unquote

_URI = re.compile(
    r"^(?P<scheme>postgres(?:ql)?://)(?:(?P<user>[^:@/]*)(?::(?P<pw>[^@/]*))?@)?(?P<rest>.*)$", re.I
)
_KV_PW = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<val>'(?:[^'\\]|\\.)*'|[^\s]+)", re.I)
_QUERY_PW = re.compile(r"([?&]password=)([^&]*)", re.I)


def split_dsn(dsn: str) -> tuple[str, str | None]:
    """(the DSN without its password, the password) for URIs and key=value strings."""
    m = _URI.match(dsn)
    if m:
        password = unquote(m.group("pw")) if m.group("pw") is not None else None
        rest = m.group("rest")
        q = _QUERY_PW.search(rest)
        if q:
            password = password or unquote(q.group(2))
            rest = _QUERY_PW.sub("", rest).replace("?&", "?").rstrip("?")
        user = m.group("user")
        return f"{m.group('scheme')}{user + '@' if user else ''}{rest}", password
    kv = _KV_PW.search(dsn)
    if not kv:
        return dsn, None
    val = kv.group("val")
    if val.startswith("'"):
        val = re.sub(r"\\(.)", r"\1", val[1:-1])
    return " ".join(_KV_PW.sub("", dsn).split()), val


def mask_dsn(dsn: str) -> str:
    """The DSN as it may be shown: the password replaced by ***."""
    m = _URI.match(dsn)
    if m:
        if m.group("pw") is not None:
            dsn = f"{m.group('scheme')}{m.group('user')}:***@{m.group('rest')}"
        return _QUERY_PW.sub(r"\1***", dsn)
    return _KV_PW.sub(lambda k: k.group("key") + "***", dsn)


_KINDS = {"TABLE": "r", "VIEW": "v", "MATERIALIZED VIEW": "m", "SEQUENCE": "S"}
_TOC = re.compile(
    r"^\d+;\s+\d+\s+\d+\s+(?P<kind>MATERIALIZED VIEW|TABLE(?! DATA)|VIEW|SEQUENCE(?! OWNED BY| SET))\s+(?P<schema>\S+)\s+(?P<name>\S+)\s"
)


def parse_toc(text: str) -> set[tuple[str, str, str]]:
    """``pg_restore --list`` -> {(schema, name, relkind)} of the tables, views and sequences it holds."""
    out = set()
    for line in text.splitlines():
        m = _TOC.match(line + " ")
        if m:
            out.add((m.group("schema"), m.group("name"), _KINDS[m.group("kind")]))
    return out


# Relations in the given schemas, minus sequences owned by a table column (dropped with the table).
RELATIONS_SQL = """
SELECT n.nspname, c.relname, c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
ORDER BY 1, 2
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def drop_statements(toc: set[tuple[str, str, str]], current: list[tuple]) -> list[str]:
    """DROP ... IF EXISTS ... CASCADE for the current relations a dump does not contain."""
    dumped = {(s, n) for s, n, _ in toc}
    words = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    return [
        f"DROP {words[kind]} IF EXISTS {_ident(schema)}.{_ident(name)} CASCADE"
        for schema, name, kind in current
        if (schema, name) not in dumped and kind in words
    ]


_MIGRATION = re.compile(r"^(\d+)[_-](.+?)(\.down)?\.sql$")


def parse_migrations(files: list[tuple[str, str, str]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(name, path, text) of *.sql files -> ([{version, name, file, sql, checksum, down, down_file}]
    sorted by version, problems). ``NNN_name.sql`` is a migration, ``NNN_name.down.sql`` undoes it."""
    ups: dict[str, dict[str, Any]] = {}
    downs: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for fname, path, text in sorted(files):
        m = _MIGRATION.match(fname)
        if not m:
            problems.append(f"{path}: a migration is named NNN_name.sql (or NNN_name.down.sql)")
            continue
        version, name, is_down = m.group(1), m.group(2), bool(m.group(3))
        if is_down:
            downs[version] = (text, path)
        elif version in ups:
            problems.append(f"{path}: version {version} is also {ups[version]['file']}")
        else:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            ups[version] = {"version": version, "name": name, "file": path, "sql": text, "checksum": digest}
    for v, (_, path) in downs.items():
        if v not in ups:
            problems.append(f"{path}: no up migration {v}")
    out = []
    for v in sorted(ups, key=int):
        m = ups[v]
        m["down"], m["down_file"] = downs.get(v, (None, None))
        out.append(m)
    return out, problems
