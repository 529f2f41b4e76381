"""The injection matrix: hostile values (PAYLOADS) pushed through every module argument that reaches a
command (CASES), run by the real step kinds through the real Drive and a real transport.

A case builds the step's arguments from the payload and the scratch directory the step runs in (the
working directory), may prepare files first, and checks afterwards that the payload reached the
command literally (a file of exactly that name, the value echoed back byte for byte, one argv
element). ``hold`` is the verdict every test asks for: the canary file does not exist and the scratch
directory's sentinels are untouched.
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.actions import Action, Run
from runbook.execute.driver import Drive
from runbook.execute.transports.base import Transport
from runbook.kinds import base as kinds
from runbook.kinds import compose_release
from runbook.kinds.base import Outcome, StepContext
from runbook.render.filters import quote
from runbook.render.secrets import Redactor
from runbook.render.templar import Templar

CANARY = "@CANARY@"  # replaced by the canary's absolute path

# Values that are code for a shell, options for a command, or expressions for find when mishandled.
PAYLOADS: dict[str, str] = {
    "command-substitution": f"$(touch {CANARY})",
    "backticks": f"`touch {CANARY}`",
    "double-quote-break": f'"; touch {CANARY}; "',
    "single-quote-break": f"'; touch {CANARY}; '",
    "trap-quote-break": f"x' EXIT; touch {CANARY}; trap 'true",
    "lone-single-quote": "'",
    "newline": f"x\ntouch {CANARY}\n",
    "semicolon": f"x; touch {CANARY}",
    "and-list": f"x && touch {CANARY}",
    "pipe": f"x | tee {CANARY}",
    "redirect": f"x > {CANARY}",
    "ifs-substitution": f"$(touch${{IFS}}{CANARY})",
    "dash-delete": "-delete",
    "dash-help": "--help",
    "dash-rf": "-rf",
    "glob-star": "*",
    "find-not": "!",
    "find-paren": "(",
}

# Jinja2 sandbox escapes: each would run `touch CANARY` (or reach Python internals) if it rendered.
TEMPLATE_PAYLOADS: dict[str, str] = {
    "cycler-globals": f"{{{{ cycler.__init__.__globals__.os.system('touch {CANARY}') }}}}",
    "joiner-globals": f"{{{{ joiner.__init__.__globals__.os.system('touch {CANARY}') }}}}",
    "namespace-globals": f"{{{{ namespace.__init__.__globals__.os.system('touch {CANARY}') }}}}",
    "lipsum-globals": f"{{{{ lipsum.__globals__['os'].system('touch {CANARY}') }}}}",
    "range-globals": f"{{{{ range.__globals__['os'].system('touch {CANARY}') }}}}",
    "mro-subclasses": (
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == 'Popen' %}"
        f"{{{{ c(['touch', '{CANARY}']).wait() }}}}{{% endif %}}{{% endfor %}}"
    ),
    "template-reference": (
        f"{{{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('touch {CANARY}') }}}}"
    ),
    "attr-filter": (
        "{{ (cycler | attr('__init__') | attr('__globals__'))['os'].system('touch " + CANARY + "') }}"
    ),
    "map-attribute": "{{ [cycler] | map(attribute='__init__') | map(attribute='__globals__') | list }}",
    "format-string": "{{ '{0.__init__.__globals__[os].system}'.format(cycler) }}",
    "dict-mro": "{{ dict.mro()[-1].__subclasses__() }}",
    "getattr-chain": "{{ x.__class__.__base__.__subclasses__() }}",
}


# What a rendered value must never show: Python internals reached through an escape.
INTERNALS = ("<function", "<module", "<class", "__builtins__", "<built-in", "<method")


def with_canary(payload: str, canary: Path) -> str:
    return payload.replace(CANARY, str(canary))


# ------------------------------------------------------------------------------------------ harness
class RecordingDrive(Drive):
    """The real Drive, keeping every action the step yielded (to find the command a value reached)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.actions: list[Action] = []

    def perform(self, action: Action) -> Any:
        self.actions.append(action)
        return super().perform(action)

    def argvs(self) -> list[tuple[str, ...]]:
        return [a.command.argv for a in self.actions if isinstance(a, Run) and a.command.argv is not None]

    def scripts(self) -> list[str]:
        return [a.command.script for a in self.actions if isinstance(a, Run) and a.command.script is not None]


@dataclass
class Scratch:
    """Where a case runs: ``dir`` is the working directory (relative paths land there), ``project``
    holds templates, ``canary`` is the file no payload may create."""

    dir: Path
    project: Path
    canary: Path
    transport: Transport
    vars: dict[str, Any] = field(default_factory=dict)
    sentinels: tuple[str, ...] = ("keep.txt", "keep/inner.txt", ".hidden")

    def plant(self) -> None:
        for rel in self.sentinels:
            p = self.dir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"sentinel {rel}\n")
        (self.project / "templates").mkdir(parents=True, exist_ok=True)
        (self.project / "templates" / "value.j2").write_text("value={{ value }}\n")

    def ctx(self, dry_run: bool) -> StepContext:
        templar = Templar(Redactor())
        variables = {"runbook_backup_dir": str(self.dir.parent / "backups"), **self.vars}
        return StepContext(
            host="localhost",
            vars=variables,
            project_dir=self.project,
            run_id="injection",
            dry_run=dry_run,
            render_str=lambda text: templar.render_str(text, variables),
        )

    def run(
        self, module: str, args: dict[str, Any], *, dry_run: bool = False
    ) -> tuple[Outcome, RecordingDrive]:
        kind = kinds.get(module)
        assert kind is not None, module
        norm = kind.normalize(args)
        error = kinds.first_error(kind.schema, norm)
        assert error is None, f"{module} {args!r}: {error.message}"
        drive = RecordingDrive(transport=self.transport, dry_run=dry_run)
        return drive.run(kind.run(norm, self.ctx(dry_run))), drive

    def drive(self, gen: Any, *, dry_run: bool = False) -> tuple[Outcome, RecordingDrive]:
        drive = RecordingDrive(transport=self.transport, dry_run=dry_run)
        return drive.run(gen), drive

    def hold(self) -> None:
        """The verdict: the canary never came to exist, the working directory is intact."""
        assert not self.canary.exists(), f"INJECTED: {self.canary} was created"
        for rel in self.sentinels:
            p = self.dir / rel
            assert p.is_file() and p.read_text() == f"sentinel {rel}\n", f"{p} was touched"


# -------------------------------------------------------------------------------------------- cases
Check = Callable[[str, Scratch, Outcome, RecordingDrive, bool], None]


@dataclass(frozen=True)
class Case:
    """One module argument that reaches a command."""

    id: str
    module: str | None  # None: ``steps`` drives the generator itself
    args: Callable[[str, Scratch], dict[str, Any]] = lambda p, s: {}
    setup: Callable[[str, Scratch], None] = lambda p, s: None
    check: Check | None = None
    steps: Callable[[str, Scratch, bool], tuple[Outcome, RecordingDrive]] | None = None
    remote: bool = True  # part of the SSH subset
    needs: str = ""  # "postgres": the DSN of a real server in s.vars["dsn"]

    def execute(self, payload: str, s: Scratch, dry_run: bool) -> tuple[Outcome, RecordingDrive]:
        self.setup(payload, s)
        if self.steps is not None:
            out, drive = self.steps(payload, s, dry_run)
        else:
            assert self.module is not None
            out, drive = s.run(self.module, self.args(payload, s), dry_run=dry_run)
        if self.check is not None:
            self.check(payload, s, out, drive, dry_run)
        return out, drive


def in_argv(*parts: str) -> Check:
    """The value is one argv element (``{p}`` in a part stands for the payload)."""

    def check(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
        want = [part.replace("{p}", p) for part in parts]
        for argv in drive.argvs():  # a planned (dry-run) command is among the actions too
            if all(w in argv for w in want):
                return
        raise AssertionError(f"no command had {want!r} as arguments: {drive.argvs()!r}")

    return check


def _mkdirs(rel: str) -> Callable[[str, Scratch], None]:
    def setup(p: str, s: Scratch) -> None:
        d = s.dir / rel.replace("{p}", p)
        d.mkdir(parents=True, exist_ok=True)

    return setup


def _write(rel: str, text: str) -> Callable[[str, Scratch], None]:
    def setup(p: str, s: Scratch) -> None:
        f = s.dir / rel.replace("{p}", p)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)

    return setup


def _is_dir(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    assert out.ok, out.msg
    assert dry or (s.dir / p).is_dir(), f"no directory named {p!r}"


def _recursed(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    assert out.ok, out.msg
    f = s.dir / p / "sub" / "f"
    assert ["find", "./" + p if not p.startswith(("/", ".")) else p] == list(drive.argvs()[0][:2])
    if not dry:
        assert f.stat().st_mode & 0o777 == 0o640, oct(f.stat().st_mode)


def _is_file(text: str | None = None) -> Check:
    def check(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
        assert out.ok, out.msg
        if dry:
            return
        f = s.dir / p
        assert f.is_file(), f"no file named {p!r}"
        if text is not None:
            assert f.read_text() == text.replace("{p}", p)

    return check


def _gone(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    assert out.ok, out.msg
    assert dry or not (s.dir / p).exists()
    if not dry:
        assert out.data.get("backup") and Path(out.data["backup"]).is_file()  # archived first


def _ok(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    assert out.ok, out.msg


def _services(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    ups = [a for a in drive.argvs() if "up" in a]
    if dry:  # the daemon is not needed to plan it: the service is an operand after --
        assert ups and list(ups[-1][-2:]) == ["--", p], ups
    else:
        assert not out.ok  # no daemon here: it fails listing containers, before any change


def _url(s: Scratch, path: str) -> str:
    return f"http://127.0.0.1:{_http(s).server_address[1]}{path}"


def _http(s: Scratch) -> Any:
    return s.vars["http_server"]


def _notified(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    sent = [json.loads(body) for method, path, body, _ in _http(s).requests if path == "/echo"]
    assert sent == ([] if dry else [{"text": p}])  # the payload is the message, byte for byte


def _header(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    got = [h.get("X-Value") for _, path, _, h in _http(s).requests if path == "/echo"]
    if "\n" in p:  # not a valid header value: refused before anything is sent
        assert not out.ok and got == []
    else:
        assert out.ok and got == [p], (out.msg, got)


def _link(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    assert out.ok, out.msg
    assert dry or os.readlink(s.dir / "link") == p


def _stdout(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    if dry:
        assert out.ok and not out.stdout
        return
    assert out.ok, (out.msg, out.stderr)
    assert out.stdout == p, f"{out.stdout!r} != {p!r}"


def _pwd(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    if not dry:
        assert out.ok, (out.msg, out.stderr)
        assert out.stdout == posixpath.join(os.path.realpath(s.dir), p)


def _backup_script(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    scripts = drive.scripts()
    assert scripts and f"dest={shlex.quote(p)}" in scripts[0]  # one quoted assignment, then "$dest"
    if dry:
        assert out.ok and not (s.dir / p).exists()
        return
    dsn = s.vars.get("dsn")
    if dsn:  # a real server: the dump exists under exactly that name, checksummed
        assert out.ok, out.msg
        import hashlib

        assert out.data["sha256"] == hashlib.sha256((s.dir / p).read_bytes()).hexdigest()
    else:
        assert not out.ok and "pg_dump" in out.msg
    assert not (s.dir / (p + ".partial")).exists()


def _restore_src(p: str, s: Scratch, out: Outcome, drive: RecordingDrive, dry: bool) -> None:
    assert ("sha256sum", "--", p) in drive.argvs()
    if s.vars.get("dsn"):
        assert ("pg_restore", "--list", "--", p) in drive.argvs()
        if not dry:
            assert out.ok, out.msg
    else:
        assert not out.ok


def _pg_dsn(s: Scratch) -> str:
    return str(s.vars.get("dsn") or "postgresql://nobody@127.0.0.1:1/nothing")


def _dump_for_restore(p: str, s: Scratch) -> None:
    if s.vars.get("dsn"):
        import subprocess

        from runbook.facts.postgres import split_dsn

        plain, password = split_dsn(str(s.vars["dsn"]))
        target = s.dir / p
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["pg_dump", "--format=c", f"--file={target}", f"--dbname={plain}"], check=True,
                       env={**os.environ, "PGPASSWORD": password or ""})  # fmt: skip
    else:
        _write("{p}", "not a dump")(p, s)


COMPOSE = "services:\n  app:\n    image: busybox:latest\n"


def _release(p: str, s: Scratch, dry: bool) -> tuple[Outcome, RecordingDrive]:
    """compose.up's release record then its restore (the shell scripts), with hostile paths."""
    (s.dir / p).parent.mkdir(parents=True, exist_ok=True)
    (s.dir / p).write_text(COMPOSE)
    (s.dir / (p + ".env")).write_text("A=1\n")
    args = {"file": p, "env_file": [p + ".env"], "releases_dir": p + ".releases"}
    store = compose_release.store_dir(args, "proj")
    ctx = s.ctx(dry)
    rec, drive = s.drive(compose_release.record(args, ctx, {"store": store}, "rel1", []))
    assert rec.ok, rec.stderr
    kept = s.dir / store / "rel1"
    assert (kept / "compose.yml").read_text() == COMPOSE and (kept / "env.0").read_text() == "A=1\n"
    assert json.loads((kept / "manifest.json").read_text())["file"] == p
    assert (s.dir / store / "current").read_text() == "rel1\n"
    (s.dir / p).write_text("services: {}\n")  # a newer release went live, then is undone
    snap = {"project": "proj", "store": store, "previous_release": "rel1", "images": {}, "file": p,
            "env_files": [p + ".env"], "had_containers": True}  # fmt: skip
    out, drive2 = s.drive(compose_release.restore(args, snap, ctx), dry_run=dry)
    # the recorded file is back, under exactly that name (a dry-run only plans the copy)
    assert (s.dir / p).read_text() == ("services: {}\n" if dry else COMPOSE)
    drive.actions += drive2.actions
    return out, drive


CASES: list[Case] = [
    # file: paths, link targets, owners and groups
    Case(
        "file.path(directory)",
        "file",
        lambda p, s: {"path": p, "state": "directory", "mode": "0755"},
        check=_is_dir,
    ),
    Case(
        "file.path(recurse)",
        "file",
        lambda p, s: {"path": p, "state": "directory", "recurse": True, "mode": "u=rwX,g=rX,o="},
        setup=_write("{p}/sub/f", "x"),
        check=_recursed,
    ),
    Case("file.path(touch)", "file", lambda p, s: {"path": p, "state": "touch"}, check=_is_file()),
    Case(
        "file.path(absent)",
        "file",
        lambda p, s: {"path": p, "state": "absent"},
        setup=_write("{p}/inner/file", "doomed"),
        check=_gone,
    ),
    Case("file.src(link)", "file", lambda p, s: {"path": "link", "state": "link", "src": p}, check=_link),
    Case(
        "file.owner",
        "file",
        lambda p, s: {"path": "owned", "owner": p},
        setup=_write("owned", ""),
        check=in_argv("--", "{p}", "owned"),
    ),
    Case(
        "file.group",
        "file",
        lambda p, s: {"path": "owned", "group": p},
        setup=_write("owned", ""),
        check=in_argv("--", ":{p}", "owned"),
    ),
    # copy and template: destinations (and the backup copy beside them), rendered values
    Case("copy.dest", "copy", lambda p, s: {"content": "hello\n", "dest": p}, check=_is_file("hello\n")),
    Case(
        "copy.dest(backup)",
        "copy",
        lambda p, s: {"content": "new\n", "dest": p, "backup": True},
        setup=_write("{p}", "old\n"),
        check=_is_file("new\n"),
    ),
    Case(
        "template.dest+value",
        "template",
        lambda p, s: {"src": "value.j2", "dest": p},
        setup=lambda p, s: s.vars.update(value=p),
        check=_is_file("value={p}\n"),
    ),
    # checks that run commands
    Case(
        "check.disk.path",
        "check.disk",
        lambda p, s: {"path": p, "min_free_mb": 0},
        setup=_mkdirs("{p}"),
        check=in_argv("df", "--", "{p}"),
    ),
    Case(  # a path still to be created is measured where it will be: below the working directory
        "check.disk.path(to be created)",
        "check.disk",
        lambda p, s: {"path": p, "min_free_mb": 0},
        check=in_argv("df", "--", "."),
    ),
    Case(
        "check.env_file.path",
        "check.env_file",
        lambda p, s: {"path": p, "require": ["A"]},
        setup=_write("{p}", "A=1\n"),
        check=_ok,
    ),
    Case("check.version.of", "check.version", lambda p, s: {"of": p}, check=in_argv("{p}", "--version")),
    # shell / command: everything but the author's own shell text
    Case("shell.env", "shell", lambda p, s: {"cmd": 'printf %s "$V"', "env": {"V": p}}, check=_stdout),
    Case("shell.stdin", "shell", lambda p, s: {"cmd": "cat", "stdin": p}, check=_stdout),
    Case(
        "shell.chdir",
        "shell",
        lambda p, s: {"cmd": 'printf %s "$PWD"', "chdir": p},
        setup=_mkdirs("{p}"),
        check=_pwd,
    ),
    Case("shell.creates", "shell", lambda p, s: {"cmd": "printf ran", "creates": p}),
    Case("shell.cmd(| quote)", "shell", lambda p, s: {"cmd": "printf %s " + quote(p)}, check=_stdout),
    Case("command.argv", "command", lambda p, s: {"argv": ["printf", "%s", p]}, check=_stdout),
    Case("command.cmd(| quote)", "command", lambda p, s: {"cmd": "printf %s " + quote(p)}, check=_stdout),
    # postgres: the dump's destination (the trap!), the restore's source, DSN and tool directory
    Case(
        "postgres.backup.dest",
        "postgres.backup",
        lambda p, s: {"dsn": _pg_dsn(s), "dest": p},
        check=_backup_script,
        needs="postgres",
    ),
    Case(
        "postgres.backup.dsn",
        "postgres.backup",
        lambda p, s: {"dsn": "postgresql://nobody@127.0.0.1:1/" + p, "dest": "d.dump"},
        remote=False,
    ),
    Case(
        "postgres.backup.bin_dir",
        "postgres.backup",
        lambda p, s: {"dsn": _pg_dsn(s), "dest": "d.dump", "bin_dir": p},
        remote=False,
    ),
    Case(
        "postgres.restore.src",
        "postgres.restore",
        lambda p, s: {"dsn": _pg_dsn(s), "src": p},
        setup=_dump_for_restore,
        check=_restore_src,
        needs="postgres",
    ),
    # compose: file, project, services, docker CLI; the release record and restore scripts
    Case(
        "compose.ps.file", "compose.ps", lambda p, s: {"file": p}, check=in_argv("--file={p}"), remote=False
    ),
    Case(
        "compose.ps.project",
        "compose.ps",
        lambda p, s: {"file": "c.yml", "project": p},
        setup=_write("c.yml", COMPOSE),
        check=in_argv("--project-name={p}"),
        remote=False,
    ),
    Case(
        "compose.pull.docker",
        "compose.pull",
        lambda p, s: {"file": "c.yml", "docker": p},
        setup=_write("c.yml", COMPOSE),
        remote=False,
    ),
    Case(
        "compose.up.services",
        "compose.up",
        lambda p, s: {"file": "c.yml", "services": [p]},
        setup=_write("c.yml", COMPOSE),
        check=_services,
        remote=False,
    ),
    Case("compose.release(record+restore)", None, steps=_release),
    # reached only through files and requests, never a command: still nothing may run
    # HTTP: the value is a message body, a header, part of a URL; never more than that
    Case(
        "notify.webhook.text",
        "notify.webhook",
        lambda p, s: {"url": _url(s, "/echo"), "text": p, "fail_on_error": True},
        check=_notified,
        needs="http",
        remote=False,
    ),
    Case(
        "http.request.header",
        "http.request",
        lambda p, s: {"url": _url(s, "/echo"), "headers": {"X-Value": p}, "changes": False},
        check=_header,
        needs="http",
        remote=False,
    ),
    Case(
        "http.get.url",
        "http.get",
        lambda p, s: {"url": _url(s, "/echo?q=") + p, "timeout": 2},
        needs="http",
        remote=False,
    ),
    Case("wait.path", "wait", lambda p, s: {"path": p, "state": "present", "timeout": 0}, remote=False),
    Case("check.port.host", "check.port", lambda p, s: {"port": 1, "host": p}, remote=False),
    Case(
        "redis.ping.url",
        "redis.ping",
        lambda p, s: {"url": "redis://127.0.0.1:1/" + p, "timeout": 0.5},
        remote=False,
    ),
]
