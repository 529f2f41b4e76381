"""`runbook init DIR`: lay out a project from the shipped examples, ready for `runbook exec`."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import click

from runbook.cli.common import handle_errors
from runbook.errors import Location, UsageError

GITIGNORE = """\
# runbook's run state and audit trail (keep the audit somewhere durable; see README)
.runbook/
audit/
# written by scripts/setup-local.sh: ports and generated passwords
inventories/local/host_vars/localhost/generated.yml
"""


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@handle_errors
def init_cmd(directory: str) -> None:
    """Lay out a runbook project in DIRECTORY (default: here): playbooks/, templates/,
    inventories/local/, migrations/ with the shipped examples. Existing files are kept, never
    overwritten."""
    from runbook.cli.examples import PATTERNS, example_files

    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise UsageError("not a directory", location=Location(str(target)), hint="give a new or existing directory")
    created, kept = 0, []
    try:
        for d in PATTERNS:
            (target / d).mkdir(parents=True, exist_ok=True)
        for rel, src in example_files():
            dest = target / rel
            if dest.exists() or dest.is_symlink():
                kept.append(rel)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            os.chmod(dest, 0o644)
            created += 1
        ignore = target / ".gitignore"
        if not ignore.exists():
            ignore.write_text(GITIGNORE)
    except OSError as exc:
        raise UsageError(
            f"cannot create the project: {exc.strerror or exc}",
            location=Location(str(exc.filename or target)),
            hint="choose a directory you can write to",
        ) from None
    books = sorted(p.stem for p in (target / "playbooks").glob("*.yml"))
    click.echo(f"{target}: {created} file(s) created" + (f", {len(kept)} existing kept" if kept else ""))
    click.echo("  playbooks/          " + ", ".join(books))
    click.echo("  templates/          what template: steps render")
    click.echo("  inventories/local/  this machine (the default inventory)")
    click.echo("  migrations/         SQL migrations for postgres.migrate")
    where = "" if target.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(directory)} && "
    click.echo(f"next: {where}runbook validate && runbook exec local-smoke")
