"""Privilege escalation (Ansible's ``become``): who a step runs as and how it gets there.

One rule for every place that reads it: the step keyword wins over the runbook-level default (the
parser merges those), which wins over the inventory's ``ansible_become_*`` variables. The methods are
the ones the transports implement; any other is refused when the runbook or inventory is read, never
silently replaced by sudo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook.model import shellwords
from runbook.model.lazyre import lazy_re

METHODS = ("sudo", "su")
KEYWORDS = ("become_user", "become_method", "become_flags")  # besides `become` itself
# inventory / play variables, first one set wins (Ansible's names, old sudo_* aliases included)
VARIABLES: dict[str, tuple[str, ...]] = {
    "become": ("ansible_become", "ansible_sudo"),
    "user": ("ansible_become_user", "ansible_sudo_user"),
    "method": ("ansible_become_method",),
    "flags": ("ansible_become_flags", "ansible_sudo_flags"),
    "password": ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password"),
}


@dataclass(frozen=True)
class Become:
    """Run as ``user`` through ``method`` (sudo or su) with extra ``flags`` (shell words, each one
    argument). The password is never shown: not in repr, display strings or argv."""

    user: str = "root"
    method: str = "sudo"
    flags: str = ""
    password: str | None = field(default=None, repr=False, compare=False)


def method_problem(method: Any) -> str | None:
    """Why ``method`` cannot be used (None when it can)."""
    if isinstance(method, str) and method in METHODS:
        return None
    return f"become_method {method!r} is not supported (supported: {', '.join(METHODS)})"


_USER = lazy_re(r"#?[A-Za-z0-9_.][A-Za-z0-9_.@$-]*")


def user_problem(user: Any) -> str | None:
    """Why ``user`` is not a user name sudo/su can be given (None when it is): no option-like
    ``-name``, no spaces, slashes or control characters (``#1001`` is a uid, for sudo)."""
    if isinstance(user, str) and len(user) <= 256 and _USER.fullmatch(user):
        return None
    return f"become_user {str(user)[:100]!r} is not a user name"


def flags_problem(flags: Any) -> str | None:
    """Why ``flags`` cannot be split into words like a shell would (None when it can)."""
    try:
        shellwords.split(str(flags))
    except ValueError as exc:
        return f"become_flags {str(flags)[:100]!r} cannot be split into words: {exc}"
    return None


def pick(variables: Mapping[str, Any] | None, what: str) -> Any:
    """The first of the ``what`` variables (see VARIABLES) that is set and not empty, else None."""
    if variables is None:  # not `variables or {}`: a lazy mapping's truth value walks all its keys
        return None
    for name in VARIABLES[what]:
        value = variables.get(name)
        if value not in (None, ""):
            return value
    return None


def resolve(
    keywords: Mapping[str, Any], variables: Mapping[str, Any] | None, password: str | None = None
) -> Become:
    """The Become for one step on one host: ``keywords`` (become_user/become_method/become_flags of
    the step, runbook defaults merged in) over the host's ``ansible_become_*`` ``variables``;
    ``password`` is the fallback when no variable sets one (the transport's host spec)."""

    def first(key: str, what: str, default: str) -> str:
        value = keywords.get(key)
        if value in (None, ""):
            value = pick(variables, what)
        return default if value in (None, "") else str(value)

    pw = pick(variables, "password")
    return Become(
        user=first("become_user", "user", "root"),
        method=first("become_method", "method", "sudo"),
        flags=first("become_flags", "flags", ""),
        password=str(pw) if pw is not None else password,
    )
