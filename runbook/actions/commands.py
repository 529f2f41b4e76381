"""Commands as data: argv or shell text, built from parts that know how to quote and mask themselves.

Nothing here runs anything; transports do (runbook.execute.transports).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from runbook.model import shellwords
from runbook.model.become import Become
from runbook.render.secrets import MASK, url_passwords


def q(word: object) -> str:
    """One shell word that the shell takes literally, whatever the value holds (``$(...)``,
    backticks, quotes, newlines, globs). Every value a module puts into shell text goes through here."""
    return shlex.quote(str(word))


def operand(path: str) -> str:
    """A path as a command operand that no command can read as an option or an expression:
    ``-delete`` becomes ``./-delete`` (and ``!``, ``(`` for find). For commands that take no ``--``
    (find); the others get ``--`` before their operands. Absolute and ``.``-relative paths are kept."""
    text = str(path)
    return text if text.startswith(("/", ".")) else "./" + text


class Masked(str):
    """A command part that is a secret: it is passed to the transport as is, shown as ***."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def _show(part: str) -> str:
    return MASK if isinstance(part, Masked) else part


@dataclass(frozen=True)
class Command:
    """One command for a transport to run.

    Either ``argv`` (run without a shell, each element one argument) or ``script`` (POSIX shell text).
    ``env`` is added to the environment; ``cwd`` is the working directory; ``become`` runs it via sudo
    as ``become_user``; ``stdin`` is fed to the process.
    """

    argv: tuple[str, ...] | None = None
    script: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    stdin: bytes | None = None
    become: bool = False
    become_user: str = "root"
    become_method: str = "sudo"  # sudo | su (runbook.model.become.METHODS)
    become_flags: str = ""  # extra sudo/su options, shell words (each passed as one argument)
    become_password: str | None = field(default=None, repr=False, compare=False)  # never shown
    masked: tuple[str, ...] = ()  # extra literal values to hide whenever this command is displayed
    private: bool = False  # the script holds a secret: transports keep it off command lines

    @classmethod
    def shell(cls, script: str, **kw) -> Command:
        return cls(script=script, **kw)

    @classmethod
    def exec(cls, argv: Iterable[str], **kw) -> Command:
        return cls(argv=tuple(argv), **kw)

    def as_user(self, privilege: Become) -> Command:
        """This command, if it asks for privilege, run as ``privilege`` says (user, method, flags)."""
        if not self.become:
            return self
        return replace(
            self,
            become_user=privilege.user,
            become_method=privilege.method,
            become_flags=privilege.flags,
            become_password=privilege.password,
        )

    @property
    def privilege(self) -> Become | None:
        """Who the command runs as when it asks for privilege (None when it does not)."""
        if not self.become:
            return None
        return Become(self.become_user, self.become_method, self.become_flags, self.become_password)

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.script is None):
            raise ValueError("a Command has exactly one of argv or script")

    def to_shell(self) -> str:
        """The command as one POSIX shell string (argv parts quoted)."""
        if self.script is not None:
            return self.script
        assert self.argv is not None
        return " ".join(shlex.quote(a) for a in self.argv)

    def secrets(self) -> tuple[str, ...]:
        """The secret values this command carries: masked parts and env values, and the passwords
        of URLs/DSNs written in it (``psql "postgresql://app:PW@db/app"``, ``password=PW``)."""
        parts = [*self.masked, *(a for a in self.argv or () if isinstance(a, Masked))]
        parts += [v for v in self.env.values() if isinstance(v, Masked)]
        parts += url_passwords(self.script if self.script is not None else " ".join(self.argv or ()))
        return tuple(p for p in parts if p)

    def display(self) -> str:
        """What a human (console, audit, plan) may see: masked parts and env secrets as ***."""
        if self.argv is not None:
            text = " ".join(shlex.quote(_show(a)) if not isinstance(a, Masked) else MASK for a in self.argv)
        else:
            text = _show(self.script or "")
        for secret in self.masked:
            if secret:
                text = text.replace(secret, MASK)
        for part in self.argv or ():
            if isinstance(part, Masked) and part:
                text = text.replace(part, MASK)
        env = " ".join(
            f"{k}={MASK if isinstance(v, Masked) else shlex.quote(v)}" for k, v in self.env.items()
        )
        prefix = f"cd {shlex.quote(self.cwd)} && " if self.cwd else ""
        body = f"{env + ' ' if env else ''}{text}"
        if not self.become:
            return f"{prefix}{body}"
        flags = " ".join(shlex.quote(f) for f in shellwords.split(self.become_flags))
        user = shlex.quote(self.become_user)
        if self.become_method == "su":
            return f"{prefix}su {flags + ' ' if flags else ''}{user} -c {shlex.quote(body)}"
        return f"{prefix}{self.become_method} -u {user} {flags + ' ' if flags else ''}{body}"

    def __str__(self) -> str:
        return self.display()
