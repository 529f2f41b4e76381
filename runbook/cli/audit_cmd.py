"""`runbook audit`: keygen, verify, head, show, export."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from runbook.cli.common import handle_errors
from runbook.errors import AuditError, Location, UsageError

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    default=lambda: os.environ.get("RUNBOOK_AUDIT_DIR", "audit"),
    show_default="audit, or $RUNBOOK_AUDIT_DIR",
    help="Audit directory.",
)
_SIGNERS_OPTION = click.option(
    "--allowed-signers",
    "allowed_signers",
    type=click.Path(dir_okay=False),
    default=None,
    help="Trusted public keys (OpenSSH lines, optionally prefixed by principals). "
    "Default: $RUNBOOK_ALLOWED_SIGNERS or ~/.config/runbook/allowed_signers.",
)


@click.group("audit")
def audit() -> None:
    """The signed, hash-chained audit trail: create keys, verify, pin its head, inspect and export runs."""


@audit.command("keygen")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Private key path (default ~/.config/runbook/audit_ed25519, or $RUNBOOK_AUDIT_KEY).",
)
@click.option("--comment", default=None, help="Key comment / principal (default user@host).")
@click.option(
    "--trust/--no-trust",
    "trust_here",
    default=True,
    show_default=True,
    help="Add the new key to this machine's allowed_signers file ($RUNBOOK_ALLOWED_SIGNERS or "
    "~/.config/runbook/allowed_signers), so `audit verify` here trusts it at once.",
)
@handle_errors
def keygen_cmd(out: str | None, comment: str | None, trust_here: bool) -> None:
    """Create an Ed25519 signing key (0600, never overwritten) and OUT.pub, and trust it on this
    machine (auditors elsewhere add the printed line to their own allowed_signers file)."""
    from runbook.audit.keys import (
        AllowedSigners,
        default_allowed_signers,
        default_key_path,
        generate_key,
        trust_locally,
    )

    path = Path(out) if out else default_key_path()
    signers = default_allowed_signers()
    if trust_here and (signers.exists() or signers.is_symlink()):
        AllowedSigners.load(signers)  # a file that cannot be trusted into refuses before a key exists
    signer = generate_key(path, comment)
    principal = signer.public_line.split()[2] if len(signer.public_line.split()) > 2 else "runbook-audit"
    click.echo(f"private key: {path} (mode 0600; keep it secret)")
    click.echo(f"public key:  {path}.pub")
    click.echo(f"key id:      {signer.key_id}")
    if trust_here:
        added = trust_locally(signer, principal, signers)
        click.echo(
            f"trusted:     added to {signers} (this machine's allowed signers)"
            if added
            else f"trusted:     already in {signers}"
        )
    click.echo("add this line to the auditors' allowed_signers file:")
    click.echo(f"{principal} {' '.join(signer.public_line.split()[:2])}")


def _trust(path: str | None) -> Any:
    from runbook.audit.keys import SIGNERS_ENV, AllowedSigners, default_allowed_signers

    if path:
        return AllowedSigners.load(path)
    default = default_allowed_signers()
    if default.exists() or default.is_symlink():  # whatever it is: load refuses what is not a file
        return AllowedSigners.load(default)
    if os.environ.get(SIGNERS_ENV):
        raise AuditError("allowed signers file not found", location=Location(str(default)))
    return None


_EXPECT_HEAD_OPTION = click.option(
    "--expect-head",
    "expect_heads",
    multiple=True,
    metavar="HEAD",
    help="A head printed earlier by `runbook audit head` (the line, its JSON, or @FILE): fail unless the chain "
    "still contains that run, unaltered (newest runs deleted, directory rolled back, another chain).",
)
_DSN_OPTION = click.option(
    "--audit-dsn",
    "--dsn",
    "dsn",
    envvar="RUNBOOK_AUDIT_DSN",
    default=None,
    metavar="DSN",
    help="Also cross-check the directory against the PostgreSQL sink's append-only table: runs and "
    "records there but missing from the files, or different, fail verification.",
)
_TABLE_OPTION = click.option(
    "--audit-table",
    "table",
    default="runbook_audit",
    show_default=True,
    metavar="TABLE",
    help="The sink's table (NAME or SCHEMA.NAME).",
)
_NO_LOCAL_HEAD_OPTION = click.option(
    "--no-local-head",
    is_flag=True,
    help="Do not check the directory against its local head file (kept outside it by the writer).",
)


def _expected_head(text: str) -> tuple[Any, str]:
    """An --expect-head value: the line, its JSON, or @FILE holding either."""
    from runbook.audit.head import Head, read_head_file

    if text.startswith("@"):
        return read_head_file(Path(text[1:]).expanduser()), text[1:]
    return Head.parse(text), "--expect-head"


def _verified(
    target: Path,
    trust: Any,
    allow_unsigned: bool,
    expect_heads: tuple[str, ...] = (),
    local_head: bool = True,
    dsn: str | None = None,
    table: str = "runbook_audit",
) -> Any:
    """The verify report of an audit directory, a bundle or a run file, expected heads checked."""
    from runbook.audit import export, verify
    from runbook.audit.head import apply_heads, load_local_heads
    from runbook.audit.safeio import MAX_RUN_FILE, open_regular

    heads = [_expected_head(text) for text in expect_heads]
    if dsn and not target.is_dir():
        raise UsageError("--audit-dsn cross-checks an audit directory", location=Location(str(target)))
    if not target.is_dir() and (target.exists() or target.is_symlink()):
        open_regular(target, "audit file", MAX_RUN_FILE).close()  # a FIFO, a device: refused (exit 2)
    if target.is_dir():
        report = verify.verify_directory(target, trust, allow_unsigned)
        if local_head:
            heads += [(head, f"local head {path}") for head, path in load_local_heads(target)]
    elif export.is_bundle(target) and target.suffix != ".jsonl":
        bundle = export.load_bundle(target)
        pre: list[str] = []
        if trust is None and bundle.signers is not None and bundle.signers.keys:
            trust = bundle.signers
            pre.append(
                "trusting the key(s) shipped inside the bundle: "
                + ", ".join(trust.keys)
                + " -- compare with the operator's published key, or pass --allowed-signers"
            )
        report = verify.verify_runs(bundle.runs, trust, allow_unsigned, complete=False)
        report.warnings[:0] = pre
        report.problems.extend(bundle.problems)
        if not bundle.runs:
            report.problems.append(f"bundle {target} contains no run files")
    elif target.is_file():
        report = verify.verify_file(target, trust, allow_unsigned)
    else:
        raise AuditError(
            "no such audit file or directory",
            location=Location(str(target)),
            hint="pass an audit directory, a run file or a bundle (default ./audit)",
        )
    apply_heads(report, heads, trust)
    if dsn:
        _cross_check(report, target, dsn, table)
    stale = [
        h["source"][len("local head ") :]
        for h in report.heads
        if not h["ok"] and h["source"].startswith("local head ")
    ]
    if stale:
        report.notes.append(
            f"if the audit directory was reset or restored deliberately, remove {' and '.join(stale)} "
            "(the next sealed run writes a new one)"
        )
    if trust is not None and not trust.keys:
        report.warnings.insert(
            0,
            f"{trust.source or 'the allowed signers file'} holds no ssh-ed25519 key: no signed run can verify",
        )
    return report


def _cross_check(report: Any, directory: Path, dsn: str, table: str) -> None:
    from runbook.audit.crosscheck import cross_check
    from runbook.audit.sinks.postgres import AuditTable

    db = AuditTable(dsn, table)
    try:
        found = cross_check(directory, report.runs, db)
    finally:
        db.close()
    report.problems.extend(found.problems)
    report.warnings.extend(found.warnings)
    report.notes.extend(found.notes)


@audit.command("verify")
@click.argument("path", required=False, default=None)
@_SIGNERS_OPTION
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Accept runs written without a signing key before the first signed one (never after it).",
)
@_EXPECT_HEAD_OPTION
@_NO_LOCAL_HEAD_OPTION
@_DSN_OPTION
@_TABLE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report on stdout.")
@click.option(
    "--output", type=click.Choice(["text", "json"]), default="text", help="text, or json (same as --json)."
)
@handle_errors
def verify_cmd(
    path: str | None,
    allowed_signers: str | None,
    allow_unsigned: bool,
    expect_heads: tuple[str, ...],
    no_local_head: bool,
    dsn: str | None,
    table: str,
    as_json: bool,
    output: str,
) -> None:
    """Check hashes, order, chain links, seals and signatures of PATH (a run file, an audit
    directory, or an exported bundle; default ./audit or $RUNBOOK_AUDIT_DIR), and that the chain
    still contains its expected heads. Exit 0 only if all of it verifies."""
    target = Path(path or os.environ.get("RUNBOOK_AUDIT_DIR", "audit"))
    source = click.get_current_context().get_parameter_source("dsn")
    if dsn and source == click.core.ParameterSource.ENVIRONMENT and not target.is_dir():
        dsn = None  # $RUNBOOK_AUDIT_DSN cross-checks directories; a bundle or a run file is verified alone
    report = _verified(
        target, _trust(allowed_signers), allow_unsigned, expect_heads, not no_local_head, dsn, table
    )
    if as_json or output == "json":
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        _print_report(report)
    sys.exit(0 if report.ok else 1)


@audit.command("head")
@click.argument("path", required=False, default=None)
@_SIGNERS_OPTION
@click.option("--allow-unsigned", is_flag=True, help="Accept runs written without a signing key.")
@_NO_LOCAL_HEAD_OPTION
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def head_cmd(
    path: str | None, allowed_signers: str | None, allow_unsigned: bool, no_local_head: bool, output: str
) -> None:
    """Print the signed head of the audit directory PATH (default ./audit or $RUNBOOK_AUDIT_DIR): its
    newest run, final hash, record count, signer and signature, on one line to keep outside the
    directory (a change ticket). `runbook audit verify --expect-head HEAD` later fails if the
    chain no longer contains it. The directory is verified first; no head is printed for a chain
    that does not verify."""
    from runbook.audit.chain import list_runs
    from runbook.audit.export import embedded_signers
    from runbook.audit.head import head_of

    target = Path(path or os.environ.get("RUNBOOK_AUDIT_DIR", "audit"))
    if not target.is_dir():
        raise AuditError(
            "not an audit directory",
            location=Location(str(target)),
            hint="pass the audit directory (default ./audit)",
        )
    trust = _trust(allowed_signers)
    if trust is None:  # no allowed signers here: check the seals against the keys the runs name
        trust = embedded_signers(list_runs(target))
        if trust.keys:
            click.secho(
                "warning: no allowed signers given: seals checked against the keys the runs name ("
                + ", ".join(trust.keys)
                + "); `verify --expect-head` with --allowed-signers checks the head for real",
                fg="yellow",
                err=True,
            )
    report = _verified(target, trust, allow_unsigned, (), not no_local_head)
    head = head_of(report.runs[-1]) if report.runs else None
    if not report.ok or head is None:
        with contextlib.redirect_stdout(sys.stderr):
            _print_report(report)
        raise AuditError(
            "the audit trail does not verify: no head printed",
            location=Location(str(target)),
            hint="`runbook audit verify` tells what is wrong; a head pins only a chain that verifies",
        )
    if head.key_id is None:
        click.secho(
            "warning: the newest run is unsigned: this head pins content, no signature", fg="yellow", err=True
        )
    if output == "json":
        doc = {
            **head.to_dict(),
            "directory": str(target),
            "runs": len(report.runs),
            "chain_records": report.records,
        }
        click.echo(json.dumps(doc, indent=1))
    else:
        click.echo(head.line())


def _print_report(report: Any) -> None:
    """The report as text; every value that came from the files (run ids, signer names, outcomes,
    problems quoting them) is shown with control characters escaped, never sent to the terminal."""
    from runbook.audit.show import printable as p

    for w in report.warnings:
        click.secho(f"warning: {p(w)}", fg="yellow", err=True)
    for r in report.runs:
        if r.key_id is None:
            signer = "unsigned"
        elif r.signer:
            signer = f"signed by {r.signer} ({r.key_id})"
        else:
            signer = f"signed by {r.key_id}"
        summary = p(f"{r.label}: {r.records} records, {r.seals} seals, {signer}, outcome {r.outcome or '?'}")
        if r.ok:
            click.echo(click.style("OK    ", fg="green") + summary)
        else:
            click.echo(click.style("FAIL  ", fg="red") + summary)
            for problem in r.problems:
                click.echo(f"      {p(problem)}")
        for n in r.notes:
            click.echo(f"      note: {p(n)}")
    for problem in report.problems:
        click.echo(click.style("FAIL  ", fg="red") + p(problem))
    for h in report.heads:
        if h["ok"]:
            click.echo(
                click.style("OK    ", fg="green")
                + p(f"expected head ({h['source']}): run {h['run_id']} is in the chain")
            )
    for n in report.notes:
        click.echo(f"note: {p(n)}")
    total = len(report.all_problems())
    if report.ok:
        click.secho(f"OK: {len(report.runs)} run(s), {report.records} records verified", fg="green")
    else:
        click.secho(f"FAILED: {total} problem(s) in {len(report.runs)} run(s)", fg="red")


@audit.command("show")
@click.argument("run")
@_DIR_OPTION
@handle_errors
def show_cmd(run: str, directory: str) -> None:
    """Show RUN (run id, unique prefix, file path, or "latest") as a timeline."""
    from rich.markup import escape
    from rich.table import Table

    from runbook.audit.export import resolve_run
    from runbook.audit.show import printable, timeline

    path = resolve_run(directory, run)
    try:
        tl = timeline(path)
    except OSError as exc:
        raise AuditError(f"cannot read run file: {exc.strerror}", location=Location(str(path)))
    if not tl.rows:
        raise AuditError(
            "no readable audit records in this run file"
            + (f" ({tl.unreadable} corrupt line(s))" if tl.unreadable else " (it is empty)"),
            location=Location(str(path)),
            hint=f"`runbook audit verify {path}` tells what is wrong with it",
        )
    from runbook.cli.console import make_console

    console = make_console()
    h = tl.header
    if console.width < WIDE:  # one field a line, long ones wrapped
        from rich.text import Text

        for label, value in (("run", tl.run_id), ("file", printable(path)), ("started", h["started"]),
                             ("runbook", h["runbook"]), ("operator", h["operator"]), ("signer", h["signer"])):  # fmt: skip
            for line in _wrapped(f"{label:<9}{value}", max(40, console.width), " " * 9):
                console.print(Text(line), soft_wrap=True)
    else:
        console.print(f"[bold]run {escape(tl.run_id)}[/]  {escape(printable(path))}")
        console.print(
            f"started {escape(h['started'])}  runbook {escape(h['runbook'])}  operator {escape(h['operator'])}  "
            f"signer {escape(h['signer'])}"
        )
    styles = {"failed": "red", "changed": "yellow", "ok": "green", "rolled_back": "magenta"}
    if console.width < WIDE:
        _show_narrow(console, tl.rows, styles)
    else:
        table = Table(show_edge=False, pad_edge=False)
        for col in ("#", "time", "event", "host", "phase", "step", "outcome", "rc", "duration"):
            fixed = col not in ("host", "step")
            table.add_column(
                col,
                no_wrap=fixed,
                overflow="fold",
                min_width=None if fixed else 8,
                justify="right" if col in ("#", "rc") else "left",
            )
        table.add_column("detail", overflow="ellipsis", no_wrap=True, max_width=60)
        for row in tl.rows:
            table.add_row(
                str(row.seq), escape(row.offset), escape(row.event), escape(row.host), escape(row.phase),
                escape(row.step), f"[{styles.get(row.outcome, 'default')}]{escape(row.outcome)}[/]", escape(row.rc),
                escape(row.duration), escape(row.detail),
            )  # fmt: skip
        console.print(table)
    if tl.unreadable:
        lines = ", ".join(str(n) for n in tl.bad_lines) + (
            ", ..." if tl.unreadable > len(tl.bad_lines) else ""
        )
        raise AuditError(
            f"{tl.unreadable} corrupt line(s) in this run file (line {lines}): not shown above",
            location=Location(str(path)),
            hint=f"`runbook audit verify {path}` tells what is wrong with it",
        )


WIDE = 120  # below this many columns `audit show` prints each record as lines, not a table


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, a cut one ending in the marker "…"."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _wrapped(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return [
        w.rstrip()
        for w in textwrap.wrap(
            text, width, subsequent_indent=indent, break_long_words=True, break_on_hyphens=False,
            drop_whitespace=False,
        )
    ] or [""]


def _show_narrow(console: Any, rows: list[Any], styles: dict[str, str]) -> None:
    """The timeline for an 80-column terminal: per record one line of short fields (each capped,
    a cut one marked with …), then its step and detail wrapped below it, indented (nothing lost)."""
    from rich.text import Text

    width = max(40, console.width)
    indent = " " * 8
    console.print(Text(f"{'#':>4} {'time':<10} {'event':<15} host / phase / outcome / rc / duration", style="bold"))
    for row in rows:
        line = Text(f"{row.seq:>4} {_cut(row.offset, 10):<10} {_cut(row.event, 15):<15}")
        for value, cap, style in (
            (row.host, 24, "bold"), (row.phase, 10, ""), (row.outcome, 12, styles.get(row.outcome, "")),
            (f"rc={row.rc}" if row.rc else "", 12, ""), (row.duration, 12, ""),
        ):  # fmt: skip
            if value:
                line.append(" ")
                line.append(_cut(value, cap), style=style)
        line.rstrip()
        line.truncate(width, overflow="ellipsis")
        console.print(line, soft_wrap=True)
        for label, text in (("step", row.step), ("", row.detail)):
            if not text:
                continue
            first = f"{indent}{label + ': ' if label else ''}"
            for wrapped in _wrapped(first + text, width, indent + "  "):
                console.print(Text(wrapped, style="dim" if not label else ""), soft_wrap=True)


@audit.command("export")
@click.argument("run")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Bundle to write (.tar.gz or .json)."
)
@_DIR_OPTION
@_SIGNERS_OPTION
@handle_errors
def export_cmd(run: str, out: str, directory: str, allowed_signers: str | None) -> None:
    """Write RUN with its public key(s) and verification instructions into a bundle that
    `runbook audit verify BUNDLE` checks offline."""
    from runbook.audit.export import export_runs, resolve_run

    path = resolve_run(directory, run)
    if Path(out).exists():
        raise AuditError(
            "refusing to overwrite an existing file", location=Location(out), hint="choose another --out"
        )
    dest = export_runs([path], out, _trust(allowed_signers))
    click.echo(f"wrote {dest}")
    click.echo(f"verify with: runbook audit verify {dest} --allowed-signers FILE")
