"""PostgreSQL facts: DSNs without their passwords, pg_restore's table of contents, the SQL that
empties a database before a restore (and what it reports), migration files, query expectations. Pure."""

from __future__ import annotations

import hashlib
import posixpath
import re
from typing import Any
from urllib.parse import unquote

from runbook.actions.commands import q
from runbook.model.lazyre import lazy_re

_URI = lazy_re(
    r"^(?P<scheme>postgres(?:ql)?://)(?:(?P<user>[^:@/]*)(?::(?P<pw>[^@/]*))?@)?(?P<rest>.*)$", re.I
)
# password=value in a keyword DSN; a quoted value may hold spaces and \' escapes, and an unterminated
# quote runs to the end (libpq refuses such a DSN, but no part of the password may be shown)
_KV_PW = lazy_re(r"(?P<key>\bpassword\s*=\s*)(?P<val>'(?:[^'\\]|\\.)*(?:'|\\?$)|[^\s']+)", re.I)
_QUERY_PW = lazy_re(r"([?&]password=)([^&]*)", re.I)


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
        val = re.sub(r"\\(.)", r"\1", val[1:-1] if len(val) > 1 and val.endswith("'") else val[1:])
    return " ".join(_KV_PW.sub("", dsn).split()), val


def dump_script(pg_dump: str, fmt: str, plain_dsn: str, dest: str) -> str:
    """Shell: pg_dump (password-less DSN) to dest.partial, then to dest (mode 0600); prints its sha256
    and size. A failed dump leaves nothing behind. Values are quoted once, into shell variables; the
    EXIT trap names only the variable (a value inside the trap's quoted text would be code)."""
    return "\n".join([
        "set -e",
        "umask 077",
        f"dest={q(dest)}",
        'part="$dest.partial"',
        f"mkdir -p -- {q(posixpath.dirname(dest) or '.')}",
        "trap 'rm -f -- \"$part\"' EXIT",
        f'{q(pg_dump)} --format={fmt} --no-password --file="$part" --dbname={q(plain_dsn)}',
        'mv -f -- "$part" "$dest"',
        'sha256sum < "$dest"',
        'wc -c < "$dest"',
    ])  # fmt: skip


def restore_script(pg_restore: str, psql: str, plain_dsn: str, src: str, wipe: bool, no_owner: bool) -> str:
    """Shell: pg_restore --clean's SQL to a temp file, run by psql in one transaction after (when
    ``wipe``) the SQL on stdin (WIPE_SQL)."""
    flags = "--clean --if-exists" + (" --no-owner" if no_owner else "")
    return "\n".join([
        "set -e",
        "umask 077",
        "tmp=$(mktemp)",
        "trap 'rm -f -- \"$tmp\"' EXIT",
        f'{q(pg_restore)} {flags} --file="$tmp" -- {q(src)}',
        f"{q(psql)} -X -q --no-password -v ON_ERROR_STOP=1 --single-transaction --dbname={q(plain_dsn)}"
        + (" -f -" if wipe else "") + ' -f "$tmp"',
    ])  # fmt: skip


# pg_restore --list: "<id>; <catalog> <oid> <KIND> <schema or -> <name> <owner>"
_TOC_KINDS = (
    "TEXT SEARCH CONFIGURATION|TEXT SEARCH DICTIONARY|TEXT SEARCH TEMPLATE|TEXT SEARCH PARSER|"
    "MATERIALIZED VIEW|OPERATOR FAMILY|OPERATOR CLASS|FOREIGN TABLE|AGGREGATE|COLLATION|CONVERSION|"
    "EXTENSION|PROCEDURE|STATISTICS|FUNCTION|OPERATOR|SEQUENCE|DOMAIN|SCHEMA|TABLE|BLOB|TYPE|VIEW"
)
_TOC = lazy_re(
    rf"^\d+;\s+\d+\s+\d+\s+(?P<kind>{_TOC_KINDS})(?!\s+(?:DATA|SET|OWNED BY|ATTACH)\s)"
    r"\s+(?P<schema>\S+)\s(?P<rest>.*)$"
)


def parse_toc(text: str) -> set[tuple[str, str, str]]:
    """``pg_restore --list`` -> {(KIND, schema or "-", name)} of the objects a dump creates."""
    out = set()
    for line in text.splitlines():
        m = _TOC.match(line + " ")
        if m:
            name = m.group("rest").rstrip(" ").rsplit(" ", 1)[0]  # the owner is the last word
            out.add((m.group("kind"), m.group("schema"), name))
    return out


def toc_schemas(toc: set[tuple[str, str, str]]) -> set[str]:
    """The schemas a dump creates or puts objects in."""
    return {n for k, _, n in toc if k == "SCHEMA"} | {s for _, s, _ in toc if s != "-"}


# Run (in the restore's transaction, before the dump's SQL) to make the database hold nothing the
# dump would not recreate: in the schemas in scope (@SCOPE@; NULL: every non-system schema) drop every
# object, newest first (except extension members and objects owned by another, e.g. a column's
# sequence, which go with it), then every extension not built in, every schema but public, and
# (whole database) every large object. Each drop is reported as a NOTICE
# "runbook-dropped: type<TAB>schema<TAB>name<TAB>identity".
# pg_restore's own DROP ... IF EXISTS then find nothing, and its CREATEs bring back exactly the dump.
WIPE_SQL = r"""DO $runbook$
DECLARE
  scope text[] := @SCOPE@;
  r record;
  o record;
  alive boolean;
BEGIN
  FOR r IN
    SELECT 1 AS step, d.classid, d.objid
      FROM pg_depend d JOIN pg_namespace n ON n.oid = d.refobjid
     WHERE d.refclassid = 'pg_namespace'::regclass AND d.deptype = 'n' AND d.objid >= 16384
       AND left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'
       AND (scope IS NULL OR n.nspname = ANY (scope))
       AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = d.classid AND x.objid = d.objid
                       AND x.deptype IN ('e', 'i', 'a'))
    UNION ALL
    SELECT 2, 'pg_extension'::regclass::oid, e.oid
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.oid >= 16384 AND (scope IS NULL OR n.nspname = ANY (scope))
    UNION ALL
    SELECT 3, 'pg_namespace'::regclass::oid, n.oid FROM pg_namespace n
     WHERE n.oid >= 16384 AND n.nspname <> 'public' AND left(n.nspname, 3) <> 'pg_'
       AND n.nspname <> 'information_schema' AND (scope IS NULL OR n.nspname = ANY (scope))
    UNION ALL
    SELECT 4, 'pg_largeobject'::regclass::oid, m.oid FROM pg_largeobject_metadata m WHERE scope IS NULL
    ORDER BY 1, 3 DESC  -- newest first: what depends on an object goes before it, reported
  LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE oid = $1)', CASE WHEN r.step = 4
                   THEN 'pg_catalog.pg_largeobject_metadata' ELSE r.classid::regclass::text END)
      INTO alive USING r.objid;
    CONTINUE WHEN NOT alive;  -- gone with something dropped before it
    SELECT * INTO o FROM pg_identify_object(r.classid, r.objid, 0);
    IF r.step = 4 THEN
      PERFORM pg_catalog.lo_unlink(r.objid);
    ELSE
      EXECUTE format('DROP %s %s CASCADE',
                     CASE o.type WHEN 'statistics object' THEN 'STATISTICS' ELSE upper(o.type) END, o.identity);
    END IF;
    RAISE NOTICE 'runbook-dropped: %', concat_ws(chr(9), o.type, coalesce(o.schema, '-'),
      CASE WHEN o.schema IS NULL THEN o.identity
           ELSE substr(o.identity, length(quote_ident(o.schema)) + 2) END, o.identity);
  END LOOP;
END
$runbook$;
"""


def _literal(text: str) -> str:
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def wipe_sql(scope: list[str] | None) -> str:
    """WIPE_SQL for the given schemas (None: the whole database)."""
    value = "NULL" if scope is None else "ARRAY[" + ", ".join(_literal(s) for s in scope) + "]"
    return WIPE_SQL.replace("@SCOPE@", value + "::text[]")


_DROPPED = lazy_re(r"NOTICE:\s+runbook-dropped: (.*)$", re.M)


def _bare(name: str) -> str:
    return re.sub(r'[\s"]', "", name).split("(", 1)[0]


def created_since(stderr: str, toc: set[tuple[str, str, str]]) -> tuple[int, list[str]]:
    """From the restore's output: (how many objects the wipe dropped, "type identity" of those the
    dump does not name, i.e. created since it was taken; overloads of a dumped name are not told)."""
    dumped = {(s, _bare(n)) for _, s, n in toc}
    dropped = [line.split("\t") for line in _DROPPED.findall(stderr)]
    since = [f"{d[0]} {d[3]}" for d in dropped if len(d) == 4 and (d[1], _bare(d[2])) not in dumped]
    return len(dropped), since


def dropped_summary(since: list[str], shown: int = 8) -> str:
    """ "; dropped N object(s) created since the dump: a, b, …" (empty when none were)."""
    if not since:
        return ""
    more = ", …" if len(since) > shown else ""
    return f"; dropped {len(since)} object(s) created since the dump: {', '.join(since[:shown])}{more}"


_MIGRATION = lazy_re(r"^(\d+)[_-](.+?)(\.down)?\.sql$")


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


def same_value(a: Any, b: Any) -> bool:
    """A query's value equals an expected one (numbers by value, booleans by name, else as text)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or str(a).lower() == str(b).lower()
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return str(a) == str(b)


def expect_problem(expect: Any, value: Any, rows: list) -> str | None:
    """What is wrong with a query's result given postgres.query's ``expect`` (... when absent)."""
    if not isinstance(expect, dict):
        return None if expect is ... or same_value(value, expect) else f"got {value!r}, expected {expect!r}"
    problem = None
    if "value" in expect and not same_value(value, expect["value"]):
        problem = f"got {value!r}, expected {expect['value']!r}"
    if "rows" in expect and len(rows) != int(expect["rows"]):
        problem = f"got {len(rows)} row(s), expected {expect['rows']}"
    if "min_rows" in expect and len(rows) < int(expect["min_rows"]):
        problem = f"got {len(rows)} row(s), expected at least {expect['min_rows']}"
    if "max_rows" in expect and len(rows) > int(expect["max_rows"]):
        problem = f"got {len(rows)} row(s), expected at most {expect['max_rows']}"
    return problem
