"""Secret handoff: the text of a command that holds a secret never goes on a command line.

Ansible runs ``/bin/sh -c '<script>'``, so a password templated into a shell step is in the argv of a
process on the host, readable by every user with ``ps``. Here a *private* command's script (one the
driver saw holding a secret; also ``[bash, -c, script]``, a shell step with ``executable:``) travels on
a descriptor instead:

* the persistent remote shell (whose own input is the SSH channel) starts
  ``/bin/sh -c '__rb_s=$(cat <&3) && exec 3<&- && eval "$__rb_s"' 3<<'END'`` with the script in the
  here-document;
* locally, and on one exec channel per command, the shell is ``/bin/sh -c 'IFS= read -r l; ...'``
  and the script is the first line of its stdin (octal escapes, decoded by the printf builtin),
  before the command's own stdin.

* under ``become`` (sudo closes every inherited descriptor but stdin), the script comes first on
  the stdin of the shell sudo starts (``via_stdin``).

No process's argv or environment holds it; only what the script itself passes to other programs as
arguments can show (give those secrets to programs through their environment or stdin).
"""

from __future__ import annotations

import posixpath
import secrets
import shlex
from dataclasses import replace

from runbook.actions.commands import Command
from runbook.execute.transports.pshell import octal_format


def reader(fd: int = 3) -> str:
    """The shell text that reads a script from descriptor ``fd``, closes it and runs it."""
    return f'__rb_s=$(cat <&{fd}) && exec {fd}<&- && eval "$__rb_s"'


SHELLS = frozenset({"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh"})


def shell_form(argv: list[str] | tuple[str, ...]) -> tuple[str, str, list[str]] | None:
    """``[shell, "-c", script, *args]`` (a shell step's ``executable:``) -> (shell, script, args);
    None for any other program (its arguments are its own: nothing to hand over)."""
    if len(argv) >= 3 and argv[1] == "-c" and posixpath.basename(argv[0]) in SHELLS:
        return argv[0], argv[2], list(argv[3:])
    return None


def heredoc(prefix: str, script: str, shell: str = "/bin/sh", args: list[str] | None = None) -> str:
    """sh text (for the persistent shell's input) that runs ``script`` with ``shell`` from a
    here-document on descriptor 3: ``prefix`` is what starts the shell (``exec $__rb_ss``);
    ``args`` become ``$0 $1 ...`` as with ``shell -c script args``."""
    end = "RBKEND" + secrets.token_hex(8)
    while end in script:  # pragma: no cover - 64 random bits
        end = "RBKEND" + secrets.token_hex(8)
    rest = "".join(" " + shlex.quote(a) for a in args or ())
    return f"{prefix} {shlex.quote(shell)} -c {shlex.quote(reader(3))}{rest} 3<<'{end}'\n{script}\n{end}"


def stdin_body(body: str) -> tuple[str, bytes]:
    """(the short sh text to run with ``sh -c``, the first line to send on its stdin). The text reads that line with the ``read`` builtin (byte by
    byte, so the command's own stdin follows intact), decodes its octal escapes with the ``printf``
    builtin and evaluates it: the body (env exports, the script) is in no process's argv."""
    line = octal_format(body.encode(), all_bytes=True)[1:-1].encode() + b"\n"
    text = 'IFS= read -r __rb_b || exit 97; __rb_b=$(printf "$__rb_b"; echo .); eval "${__rb_b%.}"'
    return text, line


def via_stdin(command: Command) -> Command:
    """A private shell command rewritten so that its script comes first on its stdin: for
    ``become``, where sudo closes every inherited descriptor but stdin (the script, octal-escaped,
    is then in the step's stdin file in the remote shell's private 0700 directory while it runs,
    never on a command line)."""
    if not command.private:
        return command
    form = ("/bin/sh", command.script, []) if command.script is not None else shell_form(command.argv or ())
    if form is None:
        return command
    shell, script, args = form
    text, line = stdin_body(script)
    return replace(
        command, argv=(shell, "-c", text, *args), script=None, stdin=line + (command.stdin or b""), private=False
    )
