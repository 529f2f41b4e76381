"""Who approved an ``approve`` step.

The step needs ``approvers: N`` distinct people (default 1) or each of the named ones
(``approvers: [alice, carol]``) of any kind that asks_approval; runbook.kinds.base.Requirement reads it. The
people come from the run's identities (``--approver NAME``, ``$RUNBOOK_APPROVER``, else the signing
key's principal, else user@host: the CLI gathers them) or, at a terminal, are typed at the prompt.
Names are told apart case-insensitively: "Alice" twice is one approver. A "no" from anyone is a no.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runbook.kinds.base import Requirement

NAME_ATTEMPTS = 3  # a name typed empty or twice is asked again, this many times per approver


@dataclass(frozen=True)
class Identity:
    name: str
    source: str  # "--approver", "RUNBOOK_APPROVER", "signing key", "login", "typed"


@dataclass
class Decision:
    ok: bool
    requirement: Requirement
    approvers: list[dict[str, str]] = field(default_factory=list)  # [{name, source, method}]
    reason: str = ""

    @property
    def who(self) -> str:
        """What the step's message and the audit's ``approved_by`` say."""
        names = ", ".join(
            a["name"] + (" (--yes)" if a["method"] == "--yes" else "") for a in self.approvers
        )
        if self.ok:
            return names
        return self.reason + (f" (approved so far: {names})" if names else "")

    def details(self) -> dict[str, Any]:
        """The audit record's data besides ``approved_by``."""
        req = self.requirement
        return {
            "approvers": list(self.approvers),
            "required": req.count,
            **({"required_names": list(req.names)} if req.names else {}),
        }


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _distinct(identities: Sequence[Identity]) -> list[Identity]:
    seen: set[str] = set()
    out = []
    for i in identities:
        if i.name.strip() and _key(i.name) not in seen:
            seen.add(_key(i.name))
            out.append(i)
    return out


def decide(
    args: dict[str, Any],
    prompt: str,
    identities: Sequence[Identity],
    *,
    yes: bool,
    confirm: Callable[[str], bool] | None,
    ask_name: Callable[[str, str], str] | None = None,
) -> Decision:
    """Gather the approvals ``args`` require. With ``yes``: the identities given are the approvers
    (too few distinct ones, or a named approver missing, is a denial naming who is missing). Else at
    a terminal (``confirm``): each approver confirms; for several, each name is typed (``ask_name``)."""
    req = Requirement.of(args)
    people = _distinct(identities)
    if yes:
        return _by_flags(req, people)
    if confirm is None:
        return Decision(False, req, reason="no terminal to ask and --yes not given")
    return _at_terminal(req, prompt, people, confirm, ask_name)


def _record(i: Identity, method: str) -> dict[str, str]:
    return {"name": i.name, "source": i.source, "method": method}


def _by_flags(req: Requirement, people: list[Identity]) -> Decision:
    if req.names:
        given = {_key(i.name): i for i in people}
        missing = [n for n in req.names if _key(n) not in given]
        # recorded as the runbook spells the name
        found = [_record(Identity(n, given[_key(n)].source), "--yes") for n in req.names if _key(n) in given]
        if missing:
            return Decision(
                False, req, found,
                reason="needs the approval of " + ", ".join(missing) + ": pass --approver NAME for each",
            )  # fmt: skip
        return Decision(True, req, found)
    chosen = [_record(i, "--yes") for i in people[: req.count]]
    if len(chosen) < req.count:
        return Decision(
            False, req, chosen,
            reason=f"needs {req.count} distinct approvers, got {len(chosen)}: pass --approver NAME for each",
        )  # fmt: skip
    return Decision(True, req, chosen)


def _at_terminal(
    req: Requirement,
    prompt: str,
    people: list[Identity],
    confirm: Callable[[str], bool],
    ask_name: Callable[[str, str], str] | None,
) -> Decision:
    done: list[dict[str, str]] = []
    if req.names:
        for name in req.names:
            if not confirm(f"{prompt} -- approval of {name}:"):
                return Decision(False, req, done, reason=f"declined by {name}")
            done.append({"name": name, "source": "named in the runbook", "method": "typed"})
        return Decision(True, req, done)
    known = bool(people) and people[0].source != "login"  # --approver, $RUNBOOK_APPROVER, the key
    if req.count == 1 and ask_name is not None and not known:  # only the login: who is it, really?
        typed = " ".join(ask_name(f"{prompt} -- approver, name", people[0].name if people else "").split())
        people = [Identity(typed, "typed")] if typed else people
    if req.count == 1 or ask_name is None:
        if req.count > 1:
            return Decision(False, req, reason=f"needs {req.count} distinct approvers and no way to ask their names")
        who = people[0] if people else Identity("unknown", "login")
        if not confirm(prompt):
            return Decision(False, req, reason=f"declined by {who.name}")
        return Decision(True, req, [_record(who, "typed")])
    for n in range(req.count):
        default = people[n].name if n < len(people) else ""
        taken = {_key(a["name"]) for a in done}
        name = ""
        for _ in range(NAME_ATTEMPTS):
            typed = " ".join(ask_name(f"{prompt} -- approver {n + 1} of {req.count}, name", default).split())
            if typed and _key(typed) not in taken:
                name = typed
                break
            default = ""
        if not name:
            return Decision(False, req, done, reason=f"approver {n + 1} of {req.count} gave no new name")
        source = next((i.source for i in people if _key(i.name) == _key(name)), "typed")
        if not confirm(f"{prompt} -- approval of {name}:"):
            return Decision(False, req, done, reason=f"declined by {name}")
        done.append({"name": name, "source": source, "method": "typed"})
    return Decision(True, req, done)
