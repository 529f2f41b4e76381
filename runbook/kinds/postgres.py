"""postgres.*: query (read-only), backup (pg_dump on the host, checksummed), restore, migrate.

DSNs are written from the target host's point of view (``postgresql://app:pw@127.0.0.1:5432/app``):
queries and migrations go through the executor's psycopg client over the transport's tunnel, while
pg_dump / pg_restore / psql run on the host with the password in ``PGPASSWORD`` (a Masked value: never
in argv, never shown). Passwords never appear in messages: DSNs are shown as ``user:***@host``.

``postgres.restore`` (and migrate's undo from a backup) brings the database back exactly to the dump:
in one transaction it first drops everything the dump would not recreate — every object in every
non-system schema (newest first; extension members go with their extension), every extension that is
not built in, every schema but ``public`` (kept, with its owner and grants; emptied), every large
object — then runs pg_restore --clean's SQL. It needs no superuser: the role must own what it drops,
which pg_restore --clean needs anyway. ``schemas`` limits this to those schemas and the dump's.
Database-level objects outside schemas (publications, foreign servers, event triggers, casts between
built-in types) are restored from the dump but extras are not dropped.

``postgres.migrate`` applies ``NNN_name.sql`` files not yet recorded in the tracking table, each in its
own transaction together with its tracking row. Its snapshot lists the versions applied before and
the down SQL (``NNN_name.down.sql``) of the pending ones; undo runs the down files of the versions this
run applied, newest first, each in a transaction, or restores ``backup`` (a postgres.backup dump) when
a down file is missing.
"""

from __future__ import annotations

import hashlib
import posixpath
from pathlib import Path
from typing import Any

from runbook.actions import Client, Note, Operation, Run, Snapshot, Stat
from runbook.actions.commands import Command, Masked
from runbook.facts.compose import tail
from runbook.facts.postgres import (
    created_since,
    dropped_summary,
    dump_script,
    expect_problem,
    parse_migrations,
    parse_toc,
    restore_script,
    split_dsn,
    toc_schemas,
    wipe_sql,
)
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.render.secrets import mask_credentials

# the PostgreSQL client's operations (runbook.execute.clients.postgres), all through psycopg
_CLIENT = "runbook.execute.clients.postgres"
QUERY = Operation("postgres.query", f"{_CLIENT}:query", library="psycopg")
APPLIED = Operation("postgres.migrations_applied", f"{_CLIENT}:migrations_applied", library="psycopg")
MIGRATE = Operation("postgres.migrate", f"{_CLIENT}:migrate", library="psycopg")

_DSN = {"type": "string", "minLength": 1, "description": "libpq DSN or URI, as seen from the host"}
_BIN = {"type": "string", "description": "directory of pg_dump/pg_restore/psql on the host"}


def _tool(args: dict[str, Any], name: str) -> str:
    return posixpath.join(str(args["bin_dir"]), name) if args.get("bin_dir") else name


def _env(dsn: str) -> tuple[str, dict[str, str]]:
    plain, password = split_dsn(dsn)
    return plain, ({"PGPASSWORD": Masked(password)} if password else {})


@register
class PostgresQuery(StepKind):
    name = "postgres.query"
    registers = {
        "rows": "result rows (lists)",
        "columns": "column names",
        "rowcount": "rows affected or returned",
        "value": "the first column of the first row",
    }
    description = "Run a read-only query; expect a value, a row count, or bounds on it."
    schema = {
        "type": "object",
        "properties": {
            "dsn": _DSN,
            "sql": {"type": "string", "minLength": 1},
            "params": {"type": ["array", "object"]},
            "expect": {
                "description": "the first column of the first row, or {value: X} | {rows: N} | {min_rows: N} | {max_rows: N}",
            },
            "timeout": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["dsn", "sql"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        dsn = str(args["dsn"])
        params = {"dsn": dsn, "sql": args["sql"], "params": args.get("params")}
        if args.get("timeout"):
            params["connect_timeout"] = int(args["timeout"])
        res = yield Client(QUERY, params)
        shown = f"{mask_credentials(dsn)}: {' '.join(str(args['sql']).split())[:200]}"
        if not res.get("ok"):
            return Outcome.failure(f"{shown}: {res.get('error')}", command=shown)
        rows = res.get("rows") or []
        value = rows[0][0] if rows and rows[0] else None
        data = {"rows": rows, "columns": res.get("columns"), "rowcount": res.get("rowcount"), "value": value}
        problem = expect_problem(args.get("expect", ...), value, rows)
        if problem:
            return Outcome.failure(f"{shown}: {problem}", data=data, command=shown)
        summary = f"{value!r}" if len(rows) == 1 and len(rows[0]) == 1 else f"{len(rows)} row(s)"
        return Outcome.success(f"{shown} -> {summary}", data=data, command=shown)


@register
class PostgresBackup(StepKind):
    name = "postgres.backup"
    changes_every_run = True  # a new dump per run
    registers = {
        "path": "the backup file on the host",
        "sha256": "its SHA-256 (pass to postgres.restore/migrate as backup_checksum)",
        "size": "bytes",
        "format": "custom, plain or tar",
    }
    description = "pg_dump on the host (custom format by default) to dest, mode 0600, with its SHA-256."
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            "dsn": _DSN,
            "dest": {"type": "string", "minLength": 1, "description": "dump file on the host"},
            "format": {"enum": ["custom", "plain", "tar"], "default": "custom"},
            "force": {"type": "boolean", "description": "overwrite an existing dest"},
            "bin_dir": _BIN,
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds (default 3600)"},
        },
        "required": ["dsn", "dest"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        dsn, dest = str(args["dsn"]), str(args["dest"])
        st = yield Stat(dest, become=ctx.become)
        if st.exists and not args.get("force"):
            return Outcome.failure(f"{dest} exists; give another dest or force: true")
        plain, env = _env(dsn)
        fmt = {"custom": "c", "plain": "p", "tar": "t"}[args.get("format", "custom")]
        script = dump_script(_tool(args, "pg_dump"), fmt, plain, dest)
        cmd = Command.shell(script, env=env, become=ctx.become)
        yield Snapshot({"path": dest, "existed": st.exists})
        res = yield Run(cmd, timeout=float(args.get("timeout", 3600)))
        if res.dry_run:
            return Outcome.success(
                f"would dump {mask_credentials(dsn)} to {dest}",
                changed=True,
                command=cmd.display(),
                data={"path": dest, "sha256": "", "size": 0, "format": args.get("format", "custom")},
            )
        if not res.ok:
            return Outcome.failure(
                f"pg_dump of {mask_credentials(dsn)} failed: {tail(res.stderr)}",
                rc=res.rc,
                stderr=res.stderr,
                command=cmd.display(),
            )
        lines = res.stdout.split()
        checksum, size = lines[0], int(lines[-1])
        data = {"path": dest, "sha256": checksum, "size": size, "format": args.get("format", "custom")}
        return Outcome.success(
            f"{mask_credentials(dsn)} -> {dest} ({size} bytes, sha256 {checksum[:16]})",
            changed=True,
            data=data,
            command=cmd.display(),
        )

    def undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        """A backup is additive: rolling back keeps it (later undo steps may restore from it)."""
        path = str(snapshot.get("path"))
        st = yield Stat(path, become=ctx.become)
        if not st.exists:
            return Outcome.success(f"no backup was written to {path}")
        return Outcome.success(f"kept the backup {path} (a rollback never deletes backups)")


def restore_from(
    args: dict[str, Any], ctx: StepContext, dsn: str, src: str, checksum: str | None = None
) -> StepGen:
    """Verify a dump and restore it exactly, in one transaction (psql --single-transaction): first drop
    everything in the database the restore would not recreate (facts.postgres.WIPE_SQL: every
    extension, object and schema but public in scope, fed on stdin), then run pg_restore --clean's SQL."""
    plain, env = _env(dsn)
    res = yield Run(Command.exec(["sha256sum", "--", src], become=ctx.become), changes=False)
    if not res.ok:
        return Outcome.failure(f"cannot read backup {src}: {tail(res.stderr)}")
    actual = res.stdout.split()[0]
    if checksum and actual != checksum:
        return Outcome.failure(
            f"backup {src} has sha256 {actual[:16]}…, expected {checksum[:16]}… — not restoring"
        )
    res = yield Run(
        Command.exec([_tool(args, "pg_restore"), "--list", "--", src], become=ctx.become), changes=False
    )
    if not res.ok:
        return Outcome.failure(f"{src} is not a pg_dump archive: {tail(res.stderr)}")
    toc = parse_toc(res.stdout)
    wipe = args.get("drop_extra", True)
    scope = sorted(set(args["schemas"]) | toc_schemas(toc)) if args.get("schemas") else None
    script = restore_script(
        _tool(args, "pg_restore"), _tool(args, "psql"), plain, src, wipe, args.get("no_owner", True)
    )
    stdin = wipe_sql(scope).encode() if wipe else None
    cmd = Command.shell(script, env=env, become=ctx.become, stdin=stdin)
    res = yield Run(cmd, timeout=float(args.get("timeout", 3600)))
    if res.dry_run:
        what = "; first dropping everything the dump does not contain" if wipe else ""
        return Outcome.success(
            f"would restore {src} into {mask_credentials(dsn)}{what}", changed=True, command=cmd.display()
        )
    if not res.ok:
        hint = (
            " — a restore drops every object (the dump's are recreated), so the role must own them or "
            "their schema: drop the others as their owner, or limit the restore with schemas: [...]"
            if "must be owner" in res.stderr
            else ""
        )
        return Outcome.failure(
            f"restore of {src} into {mask_credentials(dsn)} failed (nothing changed): {tail(res.stderr)}{hint}",
            rc=res.rc,
            stderr=res.stderr,
            command=cmd.display(),
        )
    cleared, since = created_since(res.stderr, toc)
    return Outcome.success(
        f"restored {src} (sha256 {actual[:16]}) into {mask_credentials(dsn)}{dropped_summary(since)}",
        changed=True,
        data={"src": src, "sha256": actual, "dropped": since, "cleared": cleared},
        command=cmd.display(),
    )


@register
class PostgresRestore(StepKind):
    name = "postgres.restore"
    registers = {
        "src": "the backup restored",
        "sha256": "its SHA-256 (checked before restoring)",
        "dropped": "objects created since the backup that were dropped",
        "cleared": "tables emptied before the restore",
    }
    description = "Restore a pg_dump archive (checksum verified) in one transaction, as of the dump."
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            "dsn": _DSN,
            "src": {"type": "string", "minLength": 1},
            "checksum": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "sha256 of src"},
            "drop_extra": {
                "type": "boolean",
                "description": "first drop everything the dump does not recreate (default true)",
            },
            "schemas": {
                "type": "array",
                "items": {"type": "string"},
                "description": "only empty these schemas (and the dump's); default: the whole database",
            },
            "no_owner": {"type": "boolean"},
            "bin_dir": _BIN,
            "timeout": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["dsn", "src"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        return (yield from restore_from(args, ctx, str(args["dsn"]), str(args["src"]), args.get("checksum")))


def read_migrations(directory: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The migrations in a control-machine directory (see parse_migrations)."""
    files = [(f.name, str(f), f.read_text(encoding="utf-8")) for f in sorted(directory.iterdir())
             if f.is_file() and f.name.endswith(".sql")]  # fmt: skip
    return parse_migrations(files)


@register
class PostgresMigrate(StepKind):
    name = "postgres.migrate"
    registers = {
        "applied_before": "versions already applied",
        "applied": "versions this step applied",
        "table": "the migrations table",
    }
    description = (
        "Apply NNN_name.sql migrations not yet applied, each in a transaction with its tracking row; "
        "undo runs NNN_name.down.sql newest first, or restores backup when a down file is missing."
    )
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            "dsn": _DSN,
            "dir": {
                "type": "string",
                "minLength": 1,
                "description": "migrations directory (control machine)",
            },
            "table": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"},
            "backup": {"type": "string", "description": "a postgres.backup dump on the host, for undo"},
            "backup_checksum": {"type": "string"},
            "bin_dir": _BIN,
        },
        "required": ["dsn", "dir"],
        "additionalProperties": False,
    }

    def _common(self, args: dict[str, Any]) -> dict[str, Any]:
        table = str(args.get("table") or "schema_migrations")
        lock = int.from_bytes(hashlib.sha256(table.encode()).digest()[:7], "big")
        return {"dsn": str(args["dsn"]), "table": table, "lock_key": lock}

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        directory = ctx.find_file(str(args["dir"]), "migrations")
        if not directory.is_dir():
            return Outcome.failure(f"migrations directory {args['dir']!r} not found (looked at {directory})")
        migrations, problems = read_migrations(directory)
        if problems:
            return Outcome.failure("; ".join(problems))
        common = self._common(args)
        state = yield Client(APPLIED, {"dsn": common["dsn"], "table": common["table"]})
        if not state.get("ok"):
            return Outcome.failure(f"{mask_credentials(common['dsn'])}: {state.get('error')}")
        applied: dict[str, str] = state.get("versions") or {}
        for m in migrations:
            if m["version"] in applied and applied[m["version"]] != m["checksum"]:
                yield Note(f"warning: {m['file']} changed since it was applied (checksum differs)")
        pending = [m for m in migrations if m["version"] not in applied]
        data: dict[str, Any] = {
            "applied_before": sorted(applied, key=int),
            "applied": [],
            "table": common["table"],
        }
        if not pending:
            return Outcome.success(f"up to date ({len(applied)} applied)", data=data)
        yield Snapshot(
            {
                "table": common["table"],
                "applied_before": sorted(applied, key=int),
                "pending": [m["version"] for m in pending],
                "down": {m["version"]: m["down"] for m in pending},
                "backup": args.get("backup"),
                "backup_checksum": args.get("backup_checksum"),
            }
        )
        for m in pending:
            res = yield Client(
                MIGRATE,
                {**common, **{k: m[k] for k in ("version", "name", "sql", "checksum")}, "direction": "up",
                 "run_id": ctx.run_id},
                changes=True,
            )  # fmt: skip
            if res is None:  # dry-run
                data["applied"].append(m["version"])
                continue
            if not res.get("ok"):
                where = f"{m['file']}:{res['line']}" if res.get("line") else m["file"]
                done = (
                    f" (applied before it in this run: {', '.join(data['applied'])})"
                    if data["applied"]
                    else ""
                )
                return Outcome.failure(f"{where}: {res.get('error')}{done}", data=data)
            data["applied"].append(m["version"])
        names = ", ".join(f"{m['version']}_{m['name']}" for m in pending)
        verb = "would apply" if ctx.dry_run else "applied"
        return Outcome.success(f"{verb} {names}", changed=True, data=data)

    def verify_undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        """The tracking table lists exactly the versions applied before the run."""
        common = self._common(args)
        state = yield Client(APPLIED, {"dsn": common["dsn"], "table": snapshot["table"]})
        if not state.get("ok"):
            return Outcome.failure(f"{mask_credentials(common['dsn'])}: {state.get('error')}")
        want = sorted(snapshot.get("applied_before") or [], key=int)
        found = sorted(state.get("versions") or {}, key=int)
        if found != want:
            extra = [v for v in found if v not in want]
            missing = [v for v in want if v not in found]
            detail = "; ".join(
                part
                for part in (
                    f"still applied: {', '.join(extra)}" if extra else "",
                    f"missing: {', '.join(missing)}" if missing else "",
                )
                if part
            )
            return Outcome.failure(
                f"{mask_credentials(common['dsn'])} {snapshot['table']}: expected applied "
                f"[{', '.join(want)}], found [{', '.join(found)}] ({detail})"
            )
        return Outcome.success(f"{snapshot['table']}: applied [{', '.join(want)}], as before")

    def undo_target(self, args: dict[str, Any], snapshot: Any) -> str | None:
        return f"migrations:{mask_credentials(str(args['dsn']))}:{snapshot.get('table')}"

    def undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        common = self._common(args)
        state = yield Client(APPLIED, {"dsn": common["dsn"], "table": snapshot["table"]})
        if not state.get("ok"):
            return Outcome.failure(f"{mask_credentials(common['dsn'])}: {state.get('error')}")
        before = set(snapshot.get("applied_before") or [])
        mine = [
            v for v in snapshot.get("pending") or [] if v in (state.get("versions") or {}) and v not in before
        ]
        if not mine:
            return Outcome.success("no migration of this run is applied")
        downs: dict[str, str | None] = snapshot.get("down") or {}
        missing = [v for v in mine if not downs.get(v)]
        reverted: list[str] = []
        if not missing:
            for v in sorted(mine, key=int, reverse=True):
                res = yield Client(
                    MIGRATE,
                    {**common, "table": snapshot["table"], "version": v, "name": "", "sql": downs[v],
                     "checksum": "", "direction": "down"},
                    changes=True,
                )  # fmt: skip
                if not res.get("ok"):
                    missing = [v]
                    yield Note(f"down migration {v} failed: {res.get('error')}")
                    break
                reverted.append(v)
            else:
                return Outcome.success(f"reverted {', '.join(reverted)} (down migrations)", changed=True)
        if not snapshot.get("backup"):
            return Outcome.failure(
                f"cannot undo migration(s) {', '.join(missing)}: no down file and no backup to restore"
                + (f" (reverted {', '.join(reverted)})" if reverted else "")
            )
        out = yield from restore_from(
            args, ctx, common["dsn"], str(snapshot["backup"]), snapshot.get("backup_checksum")
        )
        if not out.ok:
            return out
        return Outcome.success(
            f"restored backup {snapshot['backup']} (no down migration for {', '.join(missing)})", changed=True
        )
