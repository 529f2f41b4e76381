"""Run state on the control machine: what each host completed, with its snapshots, persisted after
every change so that a crash loses nothing (``runbook rollback NAME --run RUN_ID``, ``--resume``).

Stored under ``.runbook/runs/<run_id>/state.json`` (directory 0700, file 0600), written whole and
fsynced before it replaces the previous one, as JSON that keeps every value's type (``encode``:
integer keys, dates, tuples, bytes, huge integers come back as they were). No secret is stored in
clear: a step's arguments are kept as written and as they ran with secrets masked (an undo uses what
ran, with the masked parts rendered again from what was written); loop items and -e values that hold
secrets are masked (the operator passes such -e values again to roll back or resume). Snapshots may
hold previous file contents, which can include secrets.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import operator
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from runbook.errors import RunbookError
from runbook.execute.faults import StateWriteError
from runbook.render.secrets import MASK, Redactor, collect_secrets, is_secret_name


@dataclass
class Entry:
    """One completed (or in-progress) mutating step execution on one host."""

    phase: str
    index: int
    name: str
    module: str
    args: Any  # the arguments as written (templates unrendered)
    item: Any = None  # {loop_var: item} of a loop item (secrets masked, see item_masked)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running | ok | changed | failed | rolled_back | rollback_failed
    changed: bool = False
    has_undo_step: bool = False
    delegate_to: str | None = None  # the host the step (and so its undo) ran on, when delegated
    key: str = ""  # the step in the runbook: steps[3], steps[3].fallback[0] (empty: phase[index])
    loop_index: int | None = None
    item_masked: bool = False  # the item held a secret: the loop is rendered again to undo
    ran_args: Any = None  # the arguments as they ran, secrets masked (those are rendered again)
    rendered: Any = field(default=None, repr=False, compare=False)  # this run's args: never saved
    rendered_item: Any = field(default=None, repr=False, compare=False)  # this run's item: never saved

    @property
    def step_key(self) -> str:
        return self.key or f"{self.phase}[{self.index}]"


@dataclass
class HostState:
    entries: list[Entry] = field(default_factory=list)
    status: str = "pending"  # pending | ok | failed | rolled_back | rollback_failed | unreachable
    last_completed: int = -1  # index of the last step completed in the steps phase
    # registered results and set_fact values (the host's live dict while it runs): a resumed run
    # skips the steps that made them, so it needs them back (secrets redacted, no_log ones left out)
    facts: dict[str, Any] = field(default_factory=dict)

    def resume_after(self) -> int:
        """The last step a resumed run may skip: the last one completed, but never past a step whose
        change the earlier run rolled back (that change is gone and must be made again)."""
        undone = [
            e.index
            for e in self.entries
            if e.phase == "steps"
            and e.status in ("rolled_back", "rollback_failed")
            and (e.snapshots or e.has_undo_step)  # a change no rollback undoes is still there
        ]
        last = min(self.last_completed, min(undone) - 1) if undone else self.last_completed
        self.status = "pending"  # the resumed run decides the host's status again
        return last


class RunState:
    def __init__(self, root: Path, run_id: str, meta: dict[str, Any]):
        self.dir = root / "runs" / run_id
        self.path = self.dir / "state.json"
        self.run_id = run_id
        self.meta = meta
        self.hosts: dict[str, HostState] = {}
        self._lock = threading.Lock()
        self.redact_obj: Callable[[Any], Any] = lambda value: value
        self.private_facts: frozenset[str] = frozenset()  # registered by no_log steps: never saved
        self._texts: dict[str, _Written] = {}  # host -> its entries as the last save wrote them

    def host(self, name: str) -> HostState:
        with self._lock:
            return self.hosts.setdefault(name, HostState())

    def save(self, durable: bool = True) -> None:
        """Write the state atomically: a temporary file written whole and fsynced, then renamed over
        the old one (which stays whole until then: a crash or a full disk never leaves a cut-short
        state, and never replaces a durable snapshot by an unsynced file). ``durable`` (snapshots:
        on disk before the change they describe) also fsyncs the directory, so the new name is on
        disk too; progress markers skip that. A write that fails raises StateWriteError."""
        with self._lock:
            hosts = ",".join(f"{_dumps(h)}:{self._host_text(h, s)}" for h, s in list(self.hosts.items()))
            data = f'{{"run_id":{_dumps(self.run_id)},"meta":{_dumps(encode(self.meta))},"hosts":{{{hosts}}}}}'.encode()
        tmp = self.path.with_suffix(".tmp")
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            except FileNotFoundError:  # the first save (or the directory was removed): make it
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:  # a short write (disk full) is never taken for the whole file
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)  # the old state stays whole until the new one is
            if durable:
                _fsync_dir(self.dir)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StateWriteError(
                f"cannot write the run state {self.path}: {exc.strerror or exc}",
                hint="free disk space or make .runbook/ writable; the change this state guards was not made",
            ) from None

    def _host_text(self, name: str, hs: HostState) -> str:
        """One host's part of the state file. The state is saved at every completed step of every
        host, so an entry as it was at the last save reuses that save's text: the same entry object
        at the same position, whose saved fields equal (deep) what that save wrote, read back — so
        an in-place change anywhere in it is seen. An entry's values are set once (its arguments,
        item, snapshots) or are a str/bool/int (status, changed, indexes): equality is exact for
        them. A host whose every entry is as last written reuses its whole list (one comparison of
        the field tuples, in C). Facts (any value, where 1 == True) are encoded at every save."""
        entries = list(hs.entries)
        values = [_saved_values(e) for e in entries]
        old = self._texts.get(name)
        if (
            old is not None
            and len(old.entries) == len(entries)
            and all(map(operator.is_, old.entries, entries))
            and old.values == values
        ):
            joined = old.joined
        else:
            n_old = len(old.entries) if old is not None else 0
            kept: list[tuple[Any, ...]] = []
            texts: list[str] = []
            for i, (e, v) in enumerate(zip(entries, values, strict=True)):
                # by position: entries are appended, so the i-th is the one the last save wrote i-th
                # (an entry moved or inserted elsewhere is only encoded again, never reused wrongly)
                if old is not None and i < n_old and old.entries[i] is e and old.values[i] == v:
                    kept.append(old.values[i])
                    texts.append(old.texts[i])
                    continue
                text = _dumps(encode(dict(zip(_SAVED, v, strict=True))))
                kept.append(_saved_values(Entry(**decode(json.loads(text)))))  # as written, read back
                texts.append(text)
            joined = ",".join(texts)
            self._texts[name] = _Written(entries, kept, texts, joined)
        st, last = hs.status, hs.last_completed
        if not hs.facts and type(st) is str and type(last) is int and -_BIG_INT < last < _BIG_INT:
            # no facts (the common case): what the general path below writes, without its walk
            return f'{{"entries":[{joined}],"status":{_dumps(st)},"last_completed":{last},"facts":{{}}}}'
        rest = _dumps(encode(_host_rest(hs, self.redact_obj, self.private_facts)))
        return f'{{"entries":[{joined}],{rest[1:]}'

    @classmethod
    def load(cls, root: Path, run_id: str) -> RunState:
        runs = root / "runs"
        # a resumed run prints its own id (ID-resume) but keeps its state in the run it resumed
        while not (runs / run_id / "state.json").exists() and run_id.endswith("-resume"):
            run_id = run_id.removesuffix("-resume")
        path = runs / run_id / "state.json"
        if not path.exists():
            matches = (
                sorted(p for p in runs.glob(f"{run_id}*") if (p / "state.json").exists())
                if runs.exists()
                else []
            )
            if len(matches) != 1:
                raise RunbookError(
                    f"no saved state for run {run_id!r} under {runs}",
                    hint="give the run id printed at the end of the run (or its unique prefix)",
                )
            path = matches[0] / "state.json"
        try:
            doc = decode(json.loads(path.read_text()))
            st = cls(root, doc["run_id"], doc.get("meta", {}))
            for h, hs in doc.get("hosts", {}).items():
                entries = [Entry(**e) for e in hs.get("entries", [])]
                st.hosts[h] = HostState(
                    entries=entries,
                    status=hs.get("status", "pending"),
                    last_completed=hs.get("last_completed", -1),
                    facts=dict(hs.get("facts") or {}),
                )
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RunbookError(
                f"the saved state of run {run_id} cannot be read ({path}): {type(exc).__name__}: {exc}",
                hint="the file is damaged; its snapshots cannot be used",
            ) from None
        return st


# compact, by json's C encoder (``indent`` would make it fall back to the pure-Python one); made
# once: ``json.dumps(value, separators=...)`` builds a new encoder at every call (~7 us, ~20 per save)
_dumps: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":")).encode


_SAVED = [f.name for f in fields(Entry) if not f.name.startswith("rendered")]  # not this run's values
_saved_values = operator.attrgetter(*_SAVED)  # an entry's saved fields, as one tuple


@dataclass
class _Written:
    """A host's entries as the last save wrote them: the entry objects, their saved fields as
    written and read back (so an in-place change of a live value shows as a difference), each one's
    JSON, and the joined list."""

    entries: list[Entry]
    values: list[tuple[Any, ...]]
    texts: list[str]
    joined: str


def _host_rest(hs: HostState, redact_obj: Callable[[Any], Any], private: frozenset[str]) -> dict[str, Any]:
    """A host's saved state but its entries (see RunState._host_text)."""
    facts = redact_obj({k: v for k, v in list(hs.facts.items()) if k not in private})
    return {"status": hs.status, "last_completed": hs.last_completed, "facts": facts}


def holds_secret(name: str, value: Any, redactor: Redactor) -> bool:
    """Is this variable a secret: a credential-like name, or a value holding a known secret?"""
    if is_secret_name(name) or collect_secrets({name: value}):
        return True
    if isinstance(value, str):
        return redactor.redact(value) != value
    if isinstance(value, Mapping):
        return any(holds_secret(str(k), v, redactor) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(holds_secret(name, v, redactor) for v in value)
    return False


def mask_extra_vars(values: Mapping[str, Any], redactor: Redactor) -> tuple[dict[str, Any], list[str]]:
    """-e values as the state keeps them: secrets masked, and the names of the masked ones."""
    saved: dict[str, Any] = {}
    masked: list[str] = []
    for k, v in values.items():
        if holds_secret(str(k), v, redactor):
            saved[k] = MASK
            masked.append(str(k))
        else:
            saved[k] = v
    return saved, masked


# ------------------------------------------------------------------------------ lossless encoding
TAG = "__runbook_type__"
_BIG_INT = 10**4000  # json refuses ints of more than 4300 digits: those are kept as hex


def encode(value: Any) -> Any:
    """A value as plain JSON without loss: non-string keys, tuples, sets, dates, bytes and huge ints
    are tagged (so a resumed run gets back ``{1: 'a'}``, not ``{'1': 'a'}``); see ``decode``."""
    t = type(value)  # the common exact types first: the state is encoded at every completed step
    if t is str or value is None or t is bool or t is float:
        return value
    if t is dict:
        if TAG not in value and all(type(k) is str for k in value):
            return {k: encode(v) for k, v in value.items()}
    elif t is list:
        return [encode(v) for v in value]
    return _encode(value)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, float, str)):
        return value
    if isinstance(value, int):
        return value if -_BIG_INT < value < _BIG_INT else {TAG: "int", "hex": hex(value)}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {str(k): encode(v) for k, v in value.items()}
        return {TAG: "map", "items": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        kind = "frozenset" if isinstance(value, frozenset) else "set"
        return {TAG: kind, "items": [encode(v) for v in value]}
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "iso": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "iso": value.isoformat()}
    if isinstance(value, (bytes, bytearray)):
        return {TAG: "bytes", "b64": base64.b64encode(bytes(value)).decode()}
    return str(value)  # anything else (a placeholder of a dry-run): its text, as before


def decode(value: Any) -> Any:
    """The inverse of ``encode`` (plain JSON from older state files decodes to itself)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: decode(v) for k, v in value.items()}
    if kind == "map":
        return {_hashable(decode(k)): decode(v) for k, v in value["items"]}
    if kind == "tuple":
        return tuple(decode(v) for v in value["items"])
    if kind in ("set", "frozenset"):
        items = {_hashable(decode(v)) for v in value["items"]}
        return frozenset(items) if kind == "frozenset" else items
    if kind == "datetime":
        return dt.datetime.fromisoformat(value["iso"])
    if kind == "date":
        return dt.date.fromisoformat(value["iso"])
    if kind == "bytes":
        return base64.b64decode(value["b64"])
    if kind == "int":
        return int(value["hex"], 16)
    raise ValueError(f"unknown encoded type {kind!r}")


def _hashable(value: Any) -> Any:
    """A key as a mapping or set needs it (a set among keys is a frozenset, a list a tuple)."""
    if isinstance(value, list):
        return tuple(value)
    return frozenset(value) if isinstance(value, set) else value


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (the new state file's name is on disk too)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
