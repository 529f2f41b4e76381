"""The `runbook` command. Subcommands are imported lazily so `runbook --help` starts fast."""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import click

from runbook import __version__
from runbook.errors import Aborted

# name -> (module, attribute, short help). Modules are imported only when the command runs.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "exec": ("runbook.cli.run_cmd", "exec_cmd", "Run a runbook: preflight, steps, rollback on failure."),
    "plan": (
        "runbook.cli.run_cmd",
        "plan_cmd",
        "Dry-run: probes for real, shows commands and diffs, changes nothing.",
    ),
    "rollback": ("runbook.cli.run_cmd", "rollback_cmd", "Roll a finished run back from its snapshots."),
    "validate": (
        "runbook.cli.info_cmd",
        "validate_cmd",
        "Static checks: schema, templates, undefined variables.",
    ),
    "list": ("runbook.cli.info_cmd", "list_cmd", "List the runbooks that exist."),
    "show": ("runbook.cli.info_cmd", "show_cmd", "Show what a runbook does, step by step."),
    "schema": ("runbook.cli.info_cmd", "schema_cmd", "Print the JSON Schema of the runbook format."),
    "inventory": (
        "runbook.cli.info_cmd",
        "inventory_cmd",
        "Show an inventory as `ansible-inventory --list` does.",
    ),
    "doc": ("runbook.cli.doc_cmd", "doc_cmd", "Show a module's arguments, registers and an example."),
    "init": ("runbook.cli.init_cmd", "init_cmd", "Lay out a new project from the shipped examples."),
    "audit": ("runbook.cli.audit_cmd", "audit", "Audit trail: keygen, verify, show, export."),
    "compile": ("runbook.cli.compile_cmd", "compile_cmd", "Print a runbook as an ordinary Ansible playbook."),
    "ansible-collection": ("runbook.cli.collection_cmd", "collection_cmd", "Where the shipped Ansible collection is."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module, attr, _ = spec
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, "--version", "-V", prog_name="runbook")
def cli() -> None:
    """Declarative runbook executor: pre-flight checks, deploys, health checks and automatic rollback,
    locally, over SSH or through Ansible, with a signed audit trail.

    \b
    Exit codes: 0 success; 1 a step failed and rollback succeeded; 2 usage or validation error;
    3 pre-flight failed (nothing changed); 4 rollback failed (a human must act); 130 interrupted.
    """


def main() -> None:
    # not click's standalone mode: it turns Ctrl-C into "Aborted!" with exit 1; ours is 130
    try:
        from runbook.cli.output import no_color

        # NO_COLOR: click's styled messages (errors, warnings) come out plain too
        rv = cli.main(prog_name="runbook", standalone_mode=False, **({"color": False} if no_color() else {}))
    except (KeyboardInterrupt, click.exceptions.Abort, Aborted):
        sys.stderr.write("interrupted\n")
        _exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        _exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        _exit(exc.exit_code)
    except BrokenPipeError:
        os._exit(0)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            _exit(exc.code or 0)
        sys.stderr.write(f"{exc.code}\n")
        _exit(1)
    _exit(rv if isinstance(rv, int) else 0)


def _exit(code: int) -> NoReturn:
    """Leave without tearing the interpreter down (~40 ms with paramiko, jinja2 and cryptography
    loaded). Safe here: by now every command has closed its audit files, saved its run state and
    closed its connections; only the standard streams and logging handlers still need flushing, and
    the dataclass code table writing if this run added to it."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    from runbook.render import codecache

    codecache.save_dataclass_cache()  # what atexit would do: the classes this run compiled first
    logging = sys.modules.get("logging")  # flushed only if something used it (not imported for it)
    if logging is not None:
        logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    main()
