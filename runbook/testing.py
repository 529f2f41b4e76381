"""Unit-test step kinds without a host: a fake transport made of data, and a runner that drives a
kind the way the engine does (arguments rendered, coerced and checked against the kind's schema,
its actions performed by the real runbook.execute.driver.Drive, dry-run and read-only included).

    from runbook.testing import FakeHost, run

    host = FakeHost(files={"/etc/app.conf": "port=80\\n"})
    host.on(r"^systemctl is-active app$", stdout="active\\n")
    done = run("acme.service_up", {"unit": "app"}, host)
    assert done.ok and done.commands == ["systemctl is-active app"]

What the kind asked for is kept: ``actions`` (every action it yielded), ``commands`` (the display
form of each command that ran), ``planned`` (what a dry-run would have done), ``snapshots``,
``notes``, ``slept`` (pauses are kept, never slept), and on the host ``written`` (path -> bytes) and ``unanswered`` (commands no reply was
scripted for: they get rc 127). Service clients (``Client``) and HTTP requests (``Http``) are
answered from ``clients`` (by operation name) and ``http`` (by ``"METHOD URL"`` or the URL)
instead of being sent anywhere.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.actions import (
    Action,
    Client,
    CommandResult,
    FileStat,
    Http,
    HttpResponse,
    Sleep,
)
from runbook.actions.commands import Command
from runbook.errors import RunbookError
from runbook.execute.driver import Drive, PlannedChange
from runbook.execute.transports.base import HostSpec, Transport
from runbook.kinds import base as kinds
from runbook.kinds.base import Outcome, StepContext, StepKind
from runbook.model.become import Become
from runbook.plan.validate import coerce
from runbook.render.templar import Templar

__all__ = ["FakeHost", "KindRun", "Reply", "render_args", "run", "undo", "verify_undo"]


@dataclass
class Reply:
    """What a command matching ``match`` (a regular expression searched in the command's display
    form, e.g. ``^df -Pk``) sends back. ``times``: how many commands it answers (None: any)."""

    match: str
    rc: int = 0
    stdout: str = ""
    stderr: str = ""
    times: int | None = None

    def answers(self, shown: str) -> bool:
        return (self.times is None or self.times > 0) and re.search(self.match, shown) is not None


ClientReply = Mapping[str, Any] | Callable[[Mapping[str, Any]], Any]
HttpReply = HttpResponse | Mapping[str, Any] | Callable[[Http], HttpResponse]


class FakeHost(Transport):
    """A host made of data: files (path -> text or bytes), directories, scripted command replies
    (the first matching Reply answers), service-client and HTTP replies. Writes land in ``files``
    (and in ``written``); nothing leaves the process."""

    def __init__(
        self,
        name: str = "testhost",
        *,
        files: Mapping[str, str | bytes] | None = None,
        dirs: tuple[str, ...] | list[str] = (),
        commands: list[Reply] | tuple[Reply, ...] = (),
        clients: Mapping[str, ClientReply] | None = None,
        http: Mapping[str, HttpReply] | None = None,
        modes: Mapping[str, int] | None = None,
        host_vars: Mapping[str, Any] | None = None,
    ):
        super().__init__(HostSpec.from_vars(name, {"ansible_connection": "local", **(host_vars or {})}))
        self.files: dict[str, bytes] = {p: _bytes(c) for p, c in (files or {}).items()}
        self.modes: dict[str, int] = dict(modes or {})  # path -> permission bits (files: 0o644)
        self.dirs: set[str] = {d.rstrip("/") or "/" for d in dirs}
        self.replies: list[Reply] = list(commands)
        self.clients: dict[str, ClientReply] = dict(clients or {})
        self.http: dict[str, HttpReply] = dict(http or {})
        self.commands_run: list[Command] = []
        self.written: dict[str, bytes] = {}
        self.unanswered: list[str] = []
        self.client_calls: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[Http] = []

    # ---------------------------------------------------------------------------- scripting
    def on(self, match: str, *, rc: int = 0, stdout: str = "", stderr: str = "", times: int | None = None) -> FakeHost:
        """Answer commands matching ``match`` (a regular expression); returns the host (chainable)."""
        self.replies.append(Reply(match, rc, stdout, stderr, times))
        return self

    def file(self, path: str, content: str | bytes, *, mode: int = 0o644) -> FakeHost:
        self.files[path] = _bytes(content)
        self.modes[path] = mode
        return self

    # ---------------------------------------------------------------------------- transport
    def run(
        self, command: Command, *, timeout: float | None = None, redact: Callable[[str], str] | None = None
    ) -> CommandResult:
        self.commands_run.append(command)
        shown = command.display()
        for reply in self.replies:
            if reply.answers(shown):
                if reply.times is not None:
                    reply.times -= 1
                return CommandResult(rc=reply.rc, stdout=reply.stdout, stderr=reply.stderr)
        self.unanswered.append(shown)
        return CommandResult(rc=127, stderr=f"runbook.testing: no reply scripted for: {shown}")

    def read_file(self, path: str, *, become: bool | Become = False) -> bytes | None:
        return self.files.get(path)

    def stat(self, path: str, *, become: bool | Become = False) -> FileStat:
        norm = path.rstrip("/") or "/"
        if norm in self.files:
            return FileStat(path, True, mode=self.modes.get(norm, 0o644), uid=0, gid=0,
                            size=len(self.files[norm]), owner="root", group="root")  # fmt: skip
        if norm in self.dirs or any(p.startswith(norm.rstrip("/") + "/") for p in self.files):
            return FileStat(path, True, is_dir=True, mode=0o755, uid=0, gid=0, owner="root", group="root")
        return FileStat(path, False)

    def write_file(
        self,
        path: str,
        content: bytes,
        *,
        mode: int | None = None,
        owner: str | None = None,
        group: str | None = None,
        become: bool | Become = False,
    ) -> None:
        self.files[path] = content
        self.written[path] = content
        if mode is not None:
            self.modes[path] = mode

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        yield (host, port)

    # ---------------------------------------------------------------------------- services
    def client(self, action: Client) -> Any:
        params = dict(action.params)
        self.client_calls.append((action.op.name, params))
        if action.op.name not in self.clients:
            raise LookupError(f"runbook.testing: no reply scripted for the client operation {action.op.name}")
        reply = self.clients[action.op.name]
        return reply(params) if callable(reply) else dict(reply)

    def request(self, action: Http) -> HttpResponse:
        self.requests.append(action)
        reply = self.http.get(f"{action.method.upper()} {action.url}", self.http.get(action.url))
        if reply is None:
            return HttpResponse(status=0, error=f"runbook.testing: no reply scripted for {action.shown()}")
        if callable(reply):
            return reply(action)
        if isinstance(reply, HttpResponse):
            return reply
        body = reply.get("body", b"")
        if not isinstance(body, (str, bytes)):
            import json

            body = json.dumps(body)
        return HttpResponse(
            status=int(reply.get("status", 200)), body=_bytes(body),
            headers={str(k).lower(): str(v) for k, v in (reply.get("headers") or {}).items()},
            error=reply.get("error"),
        )  # fmt: skip


def _bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


class _Drive(Drive):
    """The engine's Drive, keeping every action and answering clients and HTTP from the fake host."""

    def __init__(self, host: FakeHost, **kw: Any) -> None:
        super().__init__(transport=host, **kw)
        self.host = host
        self.actions: list[Action] = []
        self.notes: list[str] = []
        self.on_note = self.notes.append
        self.slept: list[float] = []

    def perform(self, action: Action) -> Any:
        self.actions.append(action)
        live = not (self.dry_run and action.mutating) and not (self.read_only and action.mutating)
        if isinstance(action, Client) and live:
            self.learn(action.secrets())
            return self.host.client(action)
        if isinstance(action, Http) and live:
            self.learn(action.secrets())
            return self.host.request(action)
        if isinstance(action, Sleep):  # kept, not slept: a test never waits
            self.slept.append(float(action.seconds))
            return None
        return super().perform(action)


@dataclass
class KindRun:
    """What one run of a kind did."""

    outcome: Outcome
    actions: list[Action]
    commands: list[str]  # display form of every command that ran (not those a dry-run planned)
    planned: list[PlannedChange]
    snapshots: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)  # the pauses asked for (none is slept)

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    @property
    def changed(self) -> bool:
        return self.outcome.changed

    @property
    def msg(self) -> str:
        return self.outcome.msg

    @property
    def registered(self) -> dict[str, Any]:
        """What ``register:`` would hold."""
        return self.outcome.registered()

    def of_type(self, cls: type) -> list[Any]:
        """The actions of one type (``done.of_type(WriteFile)``)."""
        return [a for a in self.actions if isinstance(a, cls)]


def _kind(kind: str | StepKind | type[StepKind]) -> StepKind:
    if isinstance(kind, StepKind):
        return kind
    if isinstance(kind, type):
        return kind()
    found = kinds.get(kind)
    if found is None:
        raise LookupError(f"no step kind named {kind!r} (is its package installed, with its entry point?)")
    return found


def render_args(kind: str | StepKind | type[StepKind], args: Any, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The arguments as the engine hands them to ``run``: rendered with ``variables`` (Jinja2's
    sandbox), coerced to the schema's types, checked against it (RunbookError when invalid)."""
    k = _kind(kind)
    rendered = k.normalize(Templar().render(k.normalize(args), dict(variables or {})))
    rendered = coerce(rendered, k.schema)
    err = kinds.first_error(k.schema, rendered)
    if err is not None:
        where = ".".join(str(p) for p in err.absolute_path) or k.name
        raise RunbookError(f"{k.name}: invalid argument {where}: {err.message}")
    return rendered


def context(
    host: FakeHost, variables: Mapping[str, Any] | None = None, *, project_dir: Path | None = None,
    dry_run: bool = False, become: bool = False, run_id: str = "test",
) -> StepContext:  # fmt: skip
    """A StepContext for ``host``: ``render_str`` renders with ``variables``, files are looked up
    under ``project_dir`` (templates/, files/)."""
    v = dict(variables or {})
    templar = Templar()
    project = project_dir or Path.cwd()
    return StepContext(
        host=host.name, vars=v, project_dir=project, run_id=run_id, dry_run=dry_run, become=become,
        render_str=lambda text: templar.render_str(text, v), loader_dirs=(project,),
    )  # fmt: skip


def _drive(host: FakeHost, gen: Any, *, dry_run: bool = False, read_only: bool = False) -> KindRun:
    drive = _Drive(host, dry_run=dry_run, read_only=read_only, cancel=threading.Event())
    outcome = drive.run(gen)
    return KindRun(outcome, drive.actions, list(drive.commands), list(drive.planned), list(drive.snapshots),
                   drive.notes, drive.slept)  # fmt: skip


def run(
    kind: str | StepKind | type[StepKind],
    args: Any = None,
    host: FakeHost | None = None,
    *,
    variables: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    read_only: bool = False,
    project_dir: Path | None = None,
    become: bool = False,
) -> KindRun:
    """Run a step kind (by module name, class or instance) on ``host`` (a new FakeHost if None)."""
    host = host if host is not None else FakeHost()
    k = _kind(kind)
    rendered = render_args(k, args, variables)
    ctx = context(host, variables, project_dir=project_dir, dry_run=dry_run, become=become)
    return _drive(host, k.run(rendered, ctx), dry_run=dry_run, read_only=read_only)


def undo(
    kind: str | StepKind | type[StepKind], args: Any, snapshot: Mapping[str, Any], host: FakeHost, *,
    variables: Mapping[str, Any] | None = None, project_dir: Path | None = None,
) -> KindRun:  # fmt: skip
    """Undo a step of ``kind`` from the snapshot its run took (``done.snapshots[0]``)."""
    import json

    k = _kind(kind)
    snap = json.loads(json.dumps(dict(snapshot)))  # as the engine stores it
    ctx = context(host, variables, project_dir=project_dir)
    return _drive(host, k.undo(render_args(k, args, variables), snap, ctx))


def verify_undo(
    kind: str | StepKind | type[StepKind], args: Any, snapshot: Mapping[str, Any], host: FakeHost, *,
    variables: Mapping[str, Any] | None = None, project_dir: Path | None = None,
) -> KindRun:  # fmt: skip
    """After an undo: is what the snapshot recorded back in place (read-only)?"""
    import json

    k = _kind(kind)
    snap = json.loads(json.dumps(dict(snapshot)))
    ctx = context(host, variables, project_dir=project_dir)
    return _drive(host, k.verify_undo(render_args(k, args, variables), snap, ctx), read_only=True)
