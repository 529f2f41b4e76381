"""Privilege escalation as POSIX sh text, shared by the SSH (persistent shell and exec) and local
transports: sudo or su, to any user, with the runbook's become_flags, the password never in argv.

``body(inner, user, ...)`` is sh text that runs ``inner`` (sh text: cd, exports, the command) as
``user``; it ends by exec-ing (or waiting for) the escalation, so the caller sees its rc and output.

* sudo: ``sudo -n`` when no password is needed; with a password ``sudo -S -p ''`` reads it from
  stdin (byte by byte, so the rest of stdin reaches the command). The persistent shell checks
  ``sudo -n true`` on the host first and feeds the password through a fifo; the one-shot runners
  (exec channel, local) are told by the caller (``password_needed``) and put the password line
  first on the command's stdin.
* su: PAM reads the password from su's stdin with one read(), which may swallow more than a line,
  so su's stdin carries only the password (or /dev/null) and the command's stdin travels on fd 3
  (su keeps it open; the command moves it back to fd 0). ``-s /bin/sh`` runs the command even for
  users whose login shell is nologin.

The password appears only as printf octal escapes inside sh text fed to a shell's stdin (printf is
a builtin: no process has it in argv), or on a stdin line; never in a display string or a message.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from runbook.actions.commands import Command
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.pshell import octal_format
from runbook.model import become as rules
from runbook.model import shellwords
from runbook.model.become import Become

q = shlex.quote


def host_privilege(spec: HostSpec, command: Command) -> Become | None:
    """Who ``command`` asks to run as: its own become (the engine resolved the step's keywords and
    variables into it), else the host's ``ansible_become*`` variables; the host's password when the
    command brings none. None: no privilege asked for."""
    if command.become:
        priv = command.privilege
        assert priv is not None
        return priv if priv.password is not None else replace(priv, password=spec.become_password)
    if spec.become:
        priv = rules.resolve({}, spec.vars, spec.become_password)
        return replace(priv, user=spec.become_user or priv.user)
    return None


def flags_words(flags: str) -> str:
    """The runbook's become_flags as quoted words (each flag one argument, never shell syntax)."""
    return "".join(f" {q(w)}" for w in shellwords.split(flags or ""))


def how(privilege: Become, *, uid: int, has_sudo: bool) -> str:
    """The method to use: the runbook's, except that root without sudo installed uses su (root
    needs no password for it)."""
    if privilege.method == "sudo" and uid == 0 and not has_sudo:
        return "su"
    return privilege.method


def password_needed(method: str, *, uid: int) -> bool | None:
    """Whether ``method`` asks the login user for a password: su always does except for root; for
    sudo it depends on the sudoers rules (None: ask the host with ``sudo -n true``)."""
    if method == "su":
        return uid != 0
    return None


def body(
    inner: str,
    user: str,
    *,
    method: str,
    flags: str = "",
    password: str | None,
    persistent: bool,
    has_stdin: bool,
    password_needed: bool | None = None,
) -> str:
    """sh text that runs the sh text ``inner`` as ``user`` through ``method`` (see the module doc).

    ``persistent``: the persistent shell's subshell ($__rb_d is its private directory, the
    command's stdin is the file $__rb_d/i); otherwise a one-shot shell whose stdin is the
    password line (when ``password_needed``) followed by the command's stdin.
    """
    u, fl, cmd = q(user), flags_words(flags), q(inner)
    if method == "su":
        return _su(u, fl, inner, password, persistent, bool(password_needed))
    nopw = f"exec $__rb_ss sudo -n -H{fl} -u {u} -- /bin/sh -c {cmd}"
    withpw = f"exec $__rb_ss sudo -S -p '' -H{fl} -u {u} -- /bin/sh -c {cmd}"
    if password is None:
        return nopw
    if not persistent:
        return withpw if password_needed else nopw
    cat = '; exec cat "$__rb_d/i"' if has_stdin else ""
    return "\n".join(
        [
            f"if sudo -n -H{fl} -u {u} true 2>/dev/null; then {nopw}; fi",
            _fifo_writer(password, cat),
            f'{withpw} <"$__rb_d/f"',
        ]
    )


def _fifo_writer(password: str, then: str = "") -> str:
    line = octal_format(password.encode() + b"\n", all_bytes=True)
    return f'[ -p "$__rb_d/f" ] || mkfifo -m 600 "$__rb_d/f"; ( printf {line}{then} ) >"$__rb_d/f" &'


def _su(u: str, fl: str, inner: str, password: str | None, persistent: bool, needed: bool) -> str:
    run = q("exec 0<&3 3<&-\n" + inner)
    su = f"su{fl} -s /bin/sh {u} -c {run}"
    if password is None or not needed:
        return f"exec $__rb_ss {su} 3<&0 </dev/null"
    if persistent:
        return "\n".join([_fifo_writer(password), f'exec $__rb_ss {su} 3<&0 <"$__rb_d/f"'])
    # one-shot: the first stdin line is the password (read byte by byte by the builtin `read`)
    return "\n".join(
        [
            "IFS= read -r __rb_pw || exit 1",
            "exec 3<&0",
            f"printf '%s\\n' \"$__rb_pw\" | {su}",
        ]
    )
