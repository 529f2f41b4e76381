"""What each ``-v`` adds to the console, as ansible-playbook's levels do (one home for the rule;
``runbook exec --help`` shows HELP):

  (none)  one line per step (failures with their message and output tail), the recap
  -v      + skipped steps, each step's message, its result (rc, the first lines of its output)
  -vv     + the commands as they ran (secrets masked), each serial batch
  -vvv    + how each host is reached (transport, address, port, user) and the traceback of an
          unexpected error
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HELP = (
    "More detail (repeatable): -v skipped steps, messages and step results (rc, output head); "
    "-vv also the commands as run (secrets masked); -vvv also connection details and the traceback "
    "of an unexpected error."
)

RESULTS, COMMANDS, CONNECTIONS = 1, 2, 3
HEAD_LINES = 5


def result_lines(data: Mapping[str, Any], rc: int | None, level: int) -> list[str]:
    """The lines a step's end adds at this level (plain text, not yet escaped)."""
    out: list[str] = []
    if level >= COMMANDS and data.get("command"):
        for line in str(data["command"]).splitlines():
            out.append(f"$ {line}")
    if level >= RESULTS:
        parts = [f"rc={rc}"] if rc is not None else []
        stdout = str(data.get("stdout") or "")
        if stdout.strip():
            lines = stdout.rstrip("\n").splitlines()
            parts.append(f"stdout: {len(lines)} line(s)")
            out.append(", ".join(parts))
            out.extend(f"| {line}" for line in lines[:HEAD_LINES])
            if len(lines) > HEAD_LINES:
                out.append(f"| … {len(lines) - HEAD_LINES} more line(s)")
        elif parts:
            out.append(", ".join(parts))
    return out
