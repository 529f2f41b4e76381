"""Anything that goes wrong inside a step is that step's failure: an exception nobody expected, in
any module's build, execute, snapshot or undo path, never escapes as "internal error" (exit 70).
The run goes on to rollback and always:, ends with its JSON document and a sealed audit trail.

The fuzz below takes every registered module in turn and makes its own code raise (the generator
cannot be built; it raises while it runs; its snapshot cannot be saved; its undo raises)."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook.actions import Run, Snapshot, Stat, WriteFile
from runbook.actions.commands import Command
from runbook.kinds import base as kinds
from runbook.kinds.base import Outcome
from tests.core.conftest import Project

DSN = "host=127.0.0.1 port=1 dbname=app user=app"
# arguments each module validates with (the injected fault strikes before any service is reached)
SAMPLE_ARGS: dict[str, dict[str, Any]] = {
    "ansible.playbook": {"playbook": "site.yml"},
    "approve": {"prompt": "go?"},
    "assert": {"that": ["1 == 1"]},
    "check.disk": {"path": "/", "min_free_gb": 0},
    "check.env_file": {"path": "/nonexistent/.env"},
    "check.memory": {"min_mb": 1},
    "check.port": {"port": 1},
    "check.version": {"of": "docker", "min": "1.0"},
    "command": {"argv": ["true"]},
    "compose.budget": {"file": "/nonexistent/compose.yml", "total_mb": 100},
    "compose.down": {"file": "/nonexistent/compose.yml"},
    "compose.ps": {"file": "/nonexistent/compose.yml"},
    "compose.pull": {"file": "/nonexistent/compose.yml"},
    "compose.up": {"file": "/nonexistent/compose.yml"},
    "coolify.deploy": {"url": "http://127.0.0.1:1", "token": "tok-123456", "uuid": "abc"},
    "coolify.status": {"url": "http://127.0.0.1:1", "token": "tok-123456", "uuid": "abc"},
    "copy": {"content": "x\n", "dest": "/nonexistent/x"},
    "debug": {"msg": "hello"},
    "fail": {"msg": "no"},
    "file": {"path": "/nonexistent/x", "state": "absent"},
    "http.get": {"url": "http://127.0.0.1:1/"},
    "http.download": {"url": "http://127.0.0.1:1/f", "dest": "/nonexistent/f"},
    "http.request": {"url": "http://127.0.0.1:1/", "method": "POST"},
    "notify.webhook": {"url": "http://127.0.0.1:1/hook", "text": "hi"},
    "postgres.backup": {"dsn": DSN, "dest": "/nonexistent/backup.dump"},
    "postgres.migrate": {"dsn": DSN, "dir": "migrations"},
    "postgres.query": {"dsn": DSN, "sql": "select 1"},
    "postgres.restore": {"dsn": DSN, "src": "/nonexistent/backup.dump"},
    "prometheus.query": {"url": "http://127.0.0.1:1", "query": "up"},
    "redis.ping": {"url": "redis://127.0.0.1:1/0"},
    "set_fact": {"x": 1},
    "block": {},
    "meta": "noop",
    "shell": {"cmd": "true"},
    "template": {"src": "t.j2", "dest": "/nonexistent/x"},
    "wait": {"seconds": 0},
}
MODULES = sorted(kinds.registry())
# approve never reaches its module's run (the runner asks the operator): its fault paths are the
# operator's answer (test_refusal_exit_codes)
# block never reaches its module's run either (the runner runs its steps: runbook.execute.blocks)
RUN_PATH = [m for m in MODULES if m not in ("approve", "block")]


def test_every_module_has_sample_arguments() -> None:
    assert sorted(SAMPLE_ARGS) == MODULES  # a new module joins the fuzz below


RUNBOOK = """
hosts: localhost
steps:
  - name: before
    {before}
  - name: target
    {module}: {args}
  - name: after
    {after}
always:
  - name: notify
    {notify}
"""


def writes(module: str, name: str, text: str) -> str:
    """A step writing a file with copy (or template, when copy is the module under test)."""
    if module != "copy":
        return f'copy: {{content: "{text}\\n", dest: "{{{{ t }}}}/{name}"}}'
    return f'template: {{src: "{name}.j2", dest: "{{{{ t }}}}/{name}"}}'


def write_runbook(project: Project, module: str, fail_after: bool = False) -> None:
    project.template("before.conf.j2", "new\n")
    project.template("always.j2", "{{ run.status }}\n")
    failing = "fail: {msg: stop here}" if module != "fail" else "assert: {that: ['1 == 2']}"
    text = RUNBOOK.format(
        before=writes(module, "before.conf", "new"),
        module=module,
        args=json.dumps(SAMPLE_ARGS[module]),
        after=failing if fail_after else "debug: {msg: after}",
        notify=writes(module, "always", "{{ run.status }}"),
    )
    project.runbook("fz", text)


@pytest.fixture
def t(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    monkeypatch.setenv("RUNBOOK_AUDIT_KEY", "")
    project.template("t.j2", "x\n")
    return d


def run(project: Project, t: Path) -> tuple[int, dict[str, Any]]:
    res = project.exec("fz", "-e", f"t={t}", "--output", "json", "--audit-dir", str(t.parent / "audit"))
    assert res.exit_code != 70, res.output
    assert "internal error" not in res.output and "Traceback" not in res.output
    doc = json.loads(res.stdout)  # one JSON document, whatever happened
    assert doc["exit_code"] == res.exit_code
    last = json.loads((t.parent / "audit").glob("*.jsonl").__next__().read_text().splitlines()[-1])
    assert last["event"] == "seal" and last["final"] is True  # the audit trail is sealed
    return res.exit_code, doc


def assert_failed_and_rolled_back(project: Project, t: Path, doc: dict[str, Any], text: str) -> None:
    target = project.steps(doc)["target"]
    assert target["outcome"] == "failed" and text in target["msg"], target
    assert "after" not in project.steps(doc)
    assert not (t / "before.conf").exists()  # the earlier step's change was undone
    assert (t / "always").read_text().strip() == "rolled_back"  # always: ran, and knows the outcome


def raising_run(self: Any, args: Any, ctx: Any) -> Any:
    raise RuntimeError("injected while building")


def raising_gen(self: Any, args: Any, ctx: Any) -> Iterator[Any]:
    yield Run(Command(argv=("true",)))
    raise KeyError("injected while running")


@pytest.mark.parametrize("module", RUN_PATH)
def test_an_exception_building_the_step(
    project: Project, t: Path, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds.registry()[module], "run", raising_run)
    write_runbook(project, module)
    code, doc = run(project, t)
    assert code == 1
    assert_failed_and_rolled_back(project, t, doc, "RuntimeError: injected while building")


@pytest.mark.parametrize("module", RUN_PATH)
def test_an_exception_while_the_step_runs(
    project: Project, t: Path, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds.registry()[module], "run", raising_gen)
    write_runbook(project, module)
    code, doc = run(project, t)
    assert code == 1
    assert_failed_and_rolled_back(project, t, doc, "KeyError: 'injected while running'")


def changing_gen(self: Any, args: Any, ctx: Any) -> Iterator[Any]:
    marker = Path(ctx.vars["t"]) / "changed"
    yield Snapshot({"existed": False, "path": str(marker)})
    yield WriteFile(str(marker), b"changed\n")
    return Outcome.success("changed it", changed=True)


@pytest.mark.parametrize("module", RUN_PATH)
def test_a_snapshot_that_cannot_be_saved_stops_the_change(
    project: Project, t: Path, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds.registry()[module], "run", changing_gen)
    real_write = os.write
    full = {"now": False, "done": False}

    def disk_full_for_the_snapshot(fd: int, data: Any) -> int:  # the state file's write only
        if not full["done"] and os.readlink(f"/proc/self/fd/{fd}").endswith("state.tmp"):
            if full["now"]:  # the rest of the file: no space left
                full["now"], full["done"] = False, True
                raise OSError(errno.ENOSPC, "No space left on device")
            if b'"name":"target"' in bytes(data):  # the snapshot of the step under test
                full["now"] = True
                return real_write(fd, bytes(data)[: len(data) // 2])  # a short write first
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", disk_full_for_the_snapshot)
    write_runbook(project, module)
    code, doc = run(project, t)
    assert code == 5  # the run stopped on its state; what it changed was rolled back
    target = project.steps(doc)["target"]
    assert target["outcome"] == "failed" and "snapshot not saved, nothing changed" in target["msg"]
    assert "No space left on device" in target["msg"]
    assert not (t / "changed").exists()  # the change it guards did not happen
    assert not (t / "before.conf").exists()
    assert (t / "always").read_text().strip() == "aborted"


def raising_undo(self: Any, args: Any, snapshot: Any, ctx: Any) -> Iterator[Any]:
    yield Run(Command(argv=("true",)))
    raise ValueError("injected while undoing")


@pytest.mark.parametrize("module", RUN_PATH)
def test_an_exception_while_undoing(
    project: Project, t: Path, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = kinds.registry()[module]
    monkeypatch.setattr(cls, "run", changing_gen)
    monkeypatch.setattr(cls, "undo", raising_undo)
    write_runbook(project, module, fail_after=True)
    code, doc = run(project, t)
    assert code == 4  # the rollback failed: a human must act
    assert doc["status"] == "rollback_failed"
    undo = project.steps(doc)["undo: target"]
    assert undo["outcome"] == "failed" and "ValueError: injected while undoing" in undo["msg"]
    assert not (t / "before.conf").exists()  # the rest of the rollback still ran
    assert (t / "always").read_text().strip() == "rollback_failed"


# ------------------------------------------------ the layers under a module: transport and clients
TARGET_STEPS = {
    "run": 'shell: "echo TARGET"',
    "read_file": 'copy: {content: "x\\n", dest: "{{ t }}/TARGET.conf"}',
    "stat": 'copy: {content: "x\\n", dest: "{{ t }}/TARGET.conf"}',
    "write_file": 'copy: {content: "x\\n", dest: "{{ t }}/TARGET.conf"}',
    "tunnel": 'postgres.query: {dsn: "host=127.0.0.1 port=1 dbname=x", sql: "select 1"}',
    "client": 'postgres.query: {dsn: "host=127.0.0.1 port=1 dbname=x", sql: "select 1"}',
    "http": 'http.get: {url: "http://127.0.0.1:1/TARGET"}',
    "connect": 'shell: "echo TARGET"',
}


@pytest.mark.parametrize("layer", sorted(TARGET_STEPS))
def test_an_exception_in_the_transport_or_a_client_is_the_steps_failure(
    project: Project, t: Path, layer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbook.execute import clients
    from runbook.execute.transports.local import LocalTransport

    def boom(*args: Any, **kw: Any) -> Any:
        raise RuntimeError(f"injected in {layer}")

    def only_for_target(method: str) -> None:
        real = getattr(LocalTransport, method)

        def maybe(self: Any, what: Any, *args: Any, **kw: Any) -> Any:
            shown = what.display() if hasattr(what, "display") else str(what)
            if "TARGET" in shown or method == "tunnel":
                boom()
            return real(self, what, *args, **kw)

        monkeypatch.setattr(LocalTransport, method, maybe)

    (t / "TARGET.conf").write_text("old\n")  # copy reads what it replaces
    if layer in ("run", "read_file", "stat", "write_file", "tunnel"):
        only_for_target(layer)
    elif layer == "client":
        monkeypatch.setattr(clients, "call", boom)
    elif layer == "http":
        monkeypatch.setattr(clients, "http_request", boom)
    project.runbook(
        "fz",
        f"""
hosts: localhost
steps:
  - name: before
    copy: {{content: "new\\n", dest: "{{{{ t }}}}/before.conf"}}
  - name: target
    {TARGET_STEPS[layer]}
  - name: after
    debug: {{msg: after}}
always:
  - name: notify
    shell: "echo {{{{ run.status }}}} > {{{{ t }}}}/always"
""",
    )
    if layer == "connect":  # the connection itself breaks (a library's error, not a TransportError)
        monkeypatch.setattr(
            LocalTransport, "connect", lambda self: boom() if self.spec.name == "other" else None
        )
        text = (project.root / "playbooks" / "fz.yml").read_text()
        project.runbook("fz", text.replace("  - name: target\n", "  - name: target\n    delegate_to: other\n"))
        project.inventory("localhost ansible_connection=local\nother ansible_connection=local\n")
    code, doc = run(project, t)
    assert code == 1, doc
    assert_failed_and_rolled_back(project, t, doc, f"RuntimeError: injected in {layer}")
    assert (t / "TARGET.conf").read_text() == "old\n"



# ------------------------------------------------------------------------- the reported examples
@pytest.mark.parametrize("who", ["owner", "group"])
def test_copy_with_an_owner_or_group_that_does_not_exist(project: Project, t: Path, who: str) -> None:
    project.runbook(
        "fz",
        f"""
hosts: localhost
steps:
  - name: before
    copy: {{content: "new\\n", dest: "{{{{ t }}}}/before.conf"}}
  - name: target
    copy: {{content: "x\\n", dest: "{{{{ t }}}}/owned.conf", {who}: no_such_{who}_zz}}
always:
  - name: notify
    shell: "echo {{{{ run.status }}}} > {{{{ t }}}}/always"
""",
    )
    code, doc = run(project, t)
    assert code == 1
    assert_failed_and_rolled_back(project, t, doc, f"no_such_{who}_zz")
    assert "KeyError" in project.steps(doc)["target"]["msg"]
    assert not (t / "owned.conf").exists()


# ----------------------------------------------------------------- in every phase, not only steps
def raising_probe(self: Any, args: Any, ctx: Any) -> Iterator[Any]:
    yield Stat("/")  # a read-only fact, then the probe's own bug
    raise KeyError("injected while running")


PHASES = """
hosts: localhost
preflight:
  - name: probe
    check.disk: {{path: /, min_free_gb: 0}}
steps:
  - name: before
    copy: {{content: "new\\n", dest: "{{{{ t }}}}/before.conf"}}
  - name: stop
    {stop}
{rollback}
always:
  - name: report
    check.disk: {{path: /, min_free_gb: 0}}
  - name: notify
    shell: "echo {{{{ run.status }}}} > {{{{ t }}}}/always"
"""


def test_an_exception_in_a_preflight_probe_fails_the_preflight(
    project: Project, t: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds.registry()["check.disk"], "run", raising_probe)
    project.runbook("fz", PHASES.format(stop="debug: {msg: fine}", rollback=""))
    code, doc = run(project, t)
    assert code == 3 and doc["status"] == "preflight_failed"
    assert "KeyError: 'injected while running'" in project.steps(doc)["probe"]["msg"]
    assert not (t / "before.conf").exists()
    assert (t / "always").read_text().strip() == "preflight_failed"


def test_an_exception_in_an_always_step_leaves_the_outcome(
    project: Project, t: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runbook("fz", PHASES.format(stop="debug: {msg: fine}", rollback="").replace(
        "preflight:\n  - name: probe\n    check.disk: {path: /, min_free_gb: 0}\n", ""))  # fmt: skip
    monkeypatch.setattr(kinds.registry()["check.disk"], "run", raising_probe)
    code, doc = run(project, t)
    assert code == 0 and doc["status"] == "success"
    assert project.steps(doc)["report"]["outcome"] == "failed"
    assert (t / "always").read_text().strip() == "success"  # the next always: step still ran


def test_an_exception_in_an_explicit_rollback_step_is_a_failed_rollback(
    project: Project, t: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds.registry()["check.disk"], "run", raising_probe)
    text = PHASES.format(
        stop="fail: {msg: stop}",
        rollback="rollback:\n  - name: undo probe\n    check.disk: {path: /, min_free_gb: 0}\n",
    ).replace("preflight:\n  - name: probe\n    check.disk: {path: /, min_free_gb: 0}\n", "")
    project.runbook("fz", text)
    code, doc = run(project, t)
    assert code == 4 and doc["status"] == "rollback_failed"
    assert (t / "always").read_text().strip() == "rollback_failed"
