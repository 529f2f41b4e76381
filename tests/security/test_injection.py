"""Hostile input runs no code: every module argument that reaches a command takes the value literally.

The matrix (tests/security/cases.py) pushes each payload — shell metacharacters, quote breakers, a
newline, option-like paths (``-delete``, ``--help``, ``-rf``), globs, find operators — through each
module argument that reaches a command, for real (exec) and as a dry-run (plan), on this machine
and (the slow subset) over SSH to a real sshd whose login directory is the scratch directory. Each
combination holds when the canary file was never created, the working directory's sentinels are
intact, and the value reached its command literally.

Templates: Jinja2 sandbox escapes given as -e values, runbook vars, inventory values, template files
and step arguments are refused by validate, plan and exec, and data (registered output, facts) is
never rendered as a template again.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.errors import RenderError
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.local import LocalTransport
from runbook.render.secrets import Redactor
from runbook.render.templar import LazyVars, Templar
from tests.security.cases import (
    CASES,
    INTERNALS,
    PAYLOADS,
    TEMPLATE_PAYLOADS,
    Case,
    Scratch,
    with_canary,
)
from tests.security.conftest import TALLY

LOCAL_HOST = HostSpec.from_vars("localhost", {"ansible_connection": "local"})


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scratch:
    work, canary_dir = tmp_path / "work", tmp_path / "canary"
    work.mkdir()
    canary_dir.mkdir()  # so that an injected `touch CANARY` would succeed
    monkeypatch.chdir(work)
    s = Scratch(work, tmp_path / "project", canary_dir / "PWNED", LocalTransport(LOCAL_HOST))
    s.plant()
    return s


@pytest.mark.parametrize("dry_run", [False, True], ids=["exec", "plan"])
@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_module_argument_takes_the_value_literally(
    case: Case, payload: str, dry_run: bool, scratch: Scratch, request: pytest.FixtureRequest
) -> None:
    if case.needs == "http":
        scratch.vars["http_server"] = request.getfixturevalue("http_server")
    value = with_canary(PAYLOADS[payload], scratch.canary)
    case.execute(value, scratch, dry_run)
    scratch.hold()
    TALLY.held("local", case.id, payload, "plan" if dry_run else "exec")


# --------------------------------------------------------------------------------- the sandbox
@pytest.mark.parametrize("payload", list(TEMPLATE_PAYLOADS))
def test_sandbox_refuses_every_escape(payload: str, tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    text = with_canary(TEMPLATE_PAYLOADS[payload], canary)
    templar = Templar(Redactor())
    try:
        value = templar.render(text, LazyVars([({"x": 1}, False)], templar))
    except RenderError as exc:  # refused (the sandbox, or the undefined value it left behind)
        assert "sandbox" in str(exc) or "unsafe" in str(exc) or "undefined" in str(exc)
    else:  # or rendered to nothing of Python's insides (map(attribute=...) yields Undefined)
        assert not any(i in str(value) for i in INTERNALS), value
    assert not canary.exists()
    TALLY.held("sandbox", "templar.render", payload, "render")


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ range(3) | list }}", [0, 1, 2]),
        ("{% set l = [] %}{% do l.append(x) %}{{ l | length }}", "1"),
        ("{{ {'a': 1}.items() | list }}", [("a", 1)]),
        ("{{ 'a-%s' % x }}", "a-1"),
        ("{{ '{}-{}'.format(x, 'y') }}", "1-y"),
        ("{{ ns.v }}{% set ns = namespace(v=2) %}", "2"),
        ("{{ lookup('env', 'RB_NO_SUCH_VAR') | default('no lookup', true) }}", "no lookup"),
        ("{{ 'x y' | quote }}", "'x y'"),
    ],
)
def test_sandbox_keeps_ordinary_templates_working(template: str, expected: object) -> None:
    templar = Templar(Redactor())
    scope = LazyVars([({"x": 1, "ns": {"v": 2}}, False)], templar)
    assert templar.render(template, scope) == expected


# ----------------------------------------------------------------------- through the real CLI
SANDBOX_PLACES = ["extra-var", "runbook-var", "inventory-var", "template-file", "step-argument", "when"]


def _project(root: Path, place: str, payload: str) -> list[str]:
    """A project whose one hostile template sits in ``place``; the CLI arguments that point at it."""
    (root / "playbooks").mkdir()
    (root / "templates").mkdir()
    inv = "localhost ansible_connection=local\n"
    runbook_vars = {"greeting": "hello"}
    extra: list[str] = []
    when = "true"
    src = "fine.j2"
    (root / "templates" / "fine.j2").write_text("fine {{ greeting }}\n")
    (root / "templates" / "evil.j2").write_text(payload + "\n")
    if place == "extra-var":
        extra = ["-e", json.dumps({"greeting": payload})]
    elif place == "runbook-var":
        runbook_vars["greeting"] = payload
    elif place == "inventory-var":
        (root / "host_vars").mkdir()
        (root / "host_vars" / "localhost.yml").write_text(json.dumps({"greeting": payload}))
    elif place == "template-file":
        src = "evil.j2"
    elif place == "when":
        when = json.dumps(payload)
    steps = {
        "name": "injection",
        "hosts": "localhost",
        "vars": runbook_vars,
        "steps": [
            {"name": "show", "debug": {"msg": payload if place == "step-argument" else "{{ greeting }}"}},
            {"name": "render", "template": {"src": src, "dest": str(root / "out.txt")}, "when": when},
        ],
    }
    (root / "playbooks" / "injection.yml").write_text(json.dumps(steps))
    (root / "inv").write_text(inv)
    return ["injection", "-i", str(root / "inv"), *extra]


@pytest.mark.parametrize("command", ["validate", "plan", "exec"])
@pytest.mark.parametrize("place", SANDBOX_PLACES)
@pytest.mark.parametrize("payload", list(TEMPLATE_PAYLOADS))
def test_cli_refuses_template_escapes_wherever_they_are(
    payload: str, place: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    if place == "when" and "{%" in TEMPLATE_PAYLOADS[payload]:
        pytest.skip("a when: condition is one expression")
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    canary = tmp_path / "PWNED"
    args = _project(root, place, with_canary(TEMPLATE_PAYLOADS[payload], canary))
    res = cli(command, *args, *(["--yes"] if command == "exec" else []))
    assert not canary.exists(), f"INJECTED through {place} during {command}"
    assert not any(i in res.output for i in INTERNALS), res.output
    if res.exit_code == 0:  # rendered harmlessly (to Undefined): never to Python's insides
        assert place != "template-file" or not any(i in (root / "out.txt").read_text() for i in INTERNALS)
    else:
        assert "sandbox" in res.output or "unsafe" in res.output or "undefined" in res.output, res.output
    TALLY.held("cli", f"{command}:{place}", payload, command)


def test_data_is_never_rendered_as_a_template_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli):
    """Command output, facts set from it, and files made from them keep ``{{ … }}`` as text."""
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    monkeypatch.chdir(root)
    canary = tmp_path / "PWNED"
    payloads = [with_canary(p, canary) for p in TEMPLATE_PAYLOADS.values()]
    payloads += ["{{ 7 * 7 }}", "{% raw %}x{% endraw %}"]
    (root / "payload.txt").write_text("\n".join(payloads))
    (root / "playbooks" / "data.yml").write_text(
        textwrap.dedent(
            """\
            name: data
            hosts: localhost
            steps:
              - {name: read, shell: cat payload.txt, register: out, changes: false}
              - {name: show, debug: {msg: "{{ out.stdout }}"}}
              - {name: keep, set_fact: {copied: "{{ out.stdout }}", lines: "{{ out.stdout_lines }}"}}
              - {name: file, copy: {content: "{{ copied }}", dest: copied.txt}}
              - {name: quoted, shell: "printf %s {{ out.stdout | quote }} > seen.txt"}
              - {name: each, shell: "printf '%s\\n' {{ item | quote }} >> each.txt", loop: "{{ lines }}"}
            """
        )
    )
    (root / "inv").write_text("localhost ansible_connection=local\n")
    res = cli("exec", "data", "-i", "inv", "--yes", "--output", "json")
    assert res.exit_code == 0, res.output
    text = "\n".join(payloads)
    assert (root / "copied.txt").read_text() == text
    assert (root / "seen.txt").read_text() == text
    assert (root / "each.txt").read_text() == text + "\n"
    doc = json.loads(res.stdout)
    assert next(s for s in doc["hosts"]["localhost"]["steps"] if s["name"] == "show")["msg"] == text
    assert not canary.exists()


# ---------------------------------------------------------------------- the slow subset: SSH
REMOTE_PAYLOADS = [
    "command-substitution", "backticks", "double-quote-break", "single-quote-break", "trap-quote-break",
    "newline", "redirect", "dash-delete", "dash-help", "dash-rf", "glob-star", "find-not",
]  # fmt: skip
REMOTE_CASES = [c for c in CASES if c.remote]
POSTGRES_PAYLOADS = [
    "command-substitution", "single-quote-break", "trap-quote-break", "newline", "dash-delete", "dash-help",
]  # fmt: skip


@pytest.fixture(scope="module")
def remote_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory to be root's login directory on a dedicated sshd (its own mount namespace sees
    a copy of /etc/passwd naming it), so relative paths over SSH land in it, as they do locally."""
    base = tmp_path_factory.mktemp("remote")
    home = base / "home"
    home.mkdir()
    passwd = base / "passwd"
    lines = []
    for line in Path("/etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == "root":
            f[5] = str(home)
        lines.append(":".join(f))
    passwd.write_text("\n".join(lines) + "\n")
    passwd.chmod(0o644)
    yield home, {"/etc/passwd": str(passwd)}


@pytest.fixture(scope="module", params=["persistent", "exec"])
def remote(request: pytest.FixtureRequest, ssh_lab, remote_home, tmp_path_factory):
    from runbook.execute.transports.ssh import SSHTransport
    from tests.fixtures.sshd import pick_addresses, start_sshd
    from tests.ssh.conftest import spec_for

    home, binds = remote_home
    workdir = tmp_path_factory.mktemp(f"sshd-{request.param}")
    ((addr, port),) = pick_addresses(1, first=200 + (request.param == "exec"))
    host = start_sshd(workdir, f"inject-{request.param}", addr, port, ssh_lab.authorized_keys, binds=binds)
    kh = workdir / "known_hosts"
    kh.write_text(host.known_hosts_line())
    t = SSHTransport(
        spec_for(host, ssh_lab), persistent_shell=request.param == "persistent", known_hosts=str(kh),
        ssh_config="/dev/null",
    )  # fmt: skip
    t.connect()
    assert t.mode == request.param
    try:
        yield t, home
    finally:
        t.close()
        host.stop()


@pytest.fixture
def remote_scratch(remote, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Scratch]:
    transport, home = remote
    for child in home.iterdir():  # a clean login directory for every combination
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    canary_dir = tmp_path / "canary"
    canary_dir.mkdir()
    s = Scratch(home, tmp_path / "project", canary_dir / "PWNED", transport)
    if "postgres_server" in request.fixturenames:  # a database of its own (a restore empties it)
        import secrets

        import psycopg

        server = request.getfixturevalue("postgres_server")
        name = "inject_" + secrets.token_hex(4)
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        with psycopg.connect(server.dsn.rsplit("/", 1)[0] + "/" + name, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept VALUES (1, 'x')"
            )
        s.vars["dsn"] = server.dsn.rsplit("/", 1)[0] + "/" + name
    s.plant()
    cwd = os.getcwd()
    os.chdir(home)  # the checks read relative paths from the same directory the host used
    try:
        yield s
    finally:
        os.chdir(cwd)


@pytest.mark.slow
@pytest.mark.ssh
@pytest.mark.parametrize("dry_run", [False, True], ids=["exec", "plan"])
@pytest.mark.parametrize("payload", REMOTE_PAYLOADS)
@pytest.mark.parametrize("case", [c for c in REMOTE_CASES if not c.needs], ids=lambda c: c.id)
def test_over_ssh_module_argument_takes_the_value_literally(
    case: Case, payload: str, dry_run: bool, remote_scratch: Scratch, remote
) -> None:
    value = with_canary(PAYLOADS[payload], remote_scratch.canary)
    case.execute(value, remote_scratch, dry_run)
    remote_scratch.hold()
    TALLY.held(f"ssh-{remote[0].mode}", case.id, payload, "plan" if dry_run else "exec")


@pytest.mark.slow
@pytest.mark.ssh
@pytest.mark.postgres
@pytest.mark.parametrize("payload", POSTGRES_PAYLOADS)
@pytest.mark.parametrize("case", [c for c in REMOTE_CASES if c.needs == "postgres"], ids=lambda c: c.id)
def test_over_ssh_postgres_backup_and_restore_with_hostile_paths(
    case: Case, payload: str, postgres_server, remote_scratch: Scratch, remote
) -> None:
    """A real dump is written to, and restored from, a file named exactly like the payload."""
    value = with_canary(PAYLOADS[payload], remote_scratch.canary)
    case.execute(value, remote_scratch, False)
    remote_scratch.hold()
    TALLY.held(f"ssh-{remote[0].mode}", case.id, payload, "exec(real postgres)")


def test_a_loop_item_from_data_stays_text_in_its_undo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """Rollback runs an explicit undo with the item its step ran for: still data, never a template."""
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    monkeypatch.chdir(root)
    canary = tmp_path / "PWNED"
    lines = [
        "{{ 7 * 7 }}",
        with_canary(TEMPLATE_PAYLOADS["cycler-globals"], canary),
        "$(touch " + str(canary) + ")",
    ]
    (root / "lines.txt").write_text("\n".join(lines) + "\n")
    (root / "playbooks" / "undo.yml").write_text(
        textwrap.dedent(
            """\
            name: undo
            hosts: localhost
            steps:
              - {name: read, shell: cat lines.txt, register: out, changes: false}
              - name: each
                shell: "printf '%s\\n' {{ item | quote }} >> done.txt"
                loop: "{{ out.stdout_lines }}"
                undo: {shell: "printf '%s\\n' {{ item | quote }} >> undone.txt"}
              - {name: fail, shell: "exit 1"}
            rollback: auto
            """
        )
    )
    (root / "inv").write_text("localhost ansible_connection=local\n")
    res = cli("exec", "undo", "-i", "inv", "--yes")
    assert res.exit_code == 1, res.output
    assert (root / "done.txt").read_text().splitlines() == lines
    assert sorted((root / "undone.txt").read_text().splitlines()) == sorted(lines)
    assert not canary.exists()


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_an_unsafe_inventory_value_is_never_a_template(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """``!unsafe`` (YAML) / ``__ansible_unsafe`` (JSON) in an inventory: text, as in Ansible."""
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    (root / "host_vars").mkdir()
    monkeypatch.chdir(root)
    canary = tmp_path / "PWNED"
    values = {"calc": "{{ 7 * 7 }}", "escape": with_canary(TEMPLATE_PAYLOADS["cycler-globals"], canary)}
    if form == "yaml":
        text = "".join(f"{k}: !unsafe {json.dumps(v)}\n" for k, v in values.items())
        (root / "host_vars" / "localhost.yml").write_text(text)
    else:
        doc = {k: {"__ansible_unsafe": v} for k, v in values.items()}
        (root / "host_vars" / "localhost.json").write_text(json.dumps(doc))
    (root / "playbooks" / "u.yml").write_text(
        "name: u\nhosts: localhost\nsteps:\n"
        '  - {name: calc, debug: {msg: "{{ calc }}"}}\n'
        '  - {name: escape, shell: "printf %s {{ escape | quote }} > escape.txt"}\n'
    )
    (root / "inv").write_text("localhost ansible_connection=local\n")
    res = cli("exec", "u", "-i", "inv", "--yes", "--output", "json")
    assert res.exit_code == 0, res.output
    steps = {s["name"]: s for s in json.loads(res.stdout)["hosts"]["localhost"]["steps"]}
    assert steps["calc"]["msg"] == "{{ 7 * 7 }}"
    assert (root / "escape.txt").read_text() == values["escape"]
    assert not canary.exists()
