"""Each rule has one home, and every path that used to decide it on its own now agrees with it.

* implicit localhost: `runbook.model.hostpattern` (`is_localhost`, `implicit_host_vars`,
  `connection_for`, `names_localhost`);
* credentials in URLs/DSNs: `runbook.render.secrets.mask_credentials` (console, JSON, audit trail,
  PostgreSQL sink, step messages);
* the numeric step keywords: `runbook.model.step.NUMBER_KEYWORDS` over `runbook.model.values`'s
  `number_problem`/`to_number` (when the runbook is read, when it is validated, at run time);
* yes/no words: `runbook.model.values` (`TRUE_WORDS`, `FALSE_WORDS`, `truthy`), Ansible's `boolean()`.
"""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

from runbook.errors import AuditError
from runbook.execute.transports.base import HostSpec
from runbook.model.hostpattern import (
    LOCALHOST_NAMES,
    connection_for,
    implicit_host_vars,
    is_localhost,
    names_localhost,
)
from runbook.model.inventory import load_inventory
from runbook.model.step import CONDITION_KEYWORDS, NUMBER_KEYWORDS, STEP_KEYWORDS, TEMPLATED_KEYWORDS
from runbook.model.values import BOOL_WORDS, TRUE_WORDS, number_problem, to_number, truthy
from runbook.render.secrets import Redactor, mask_credentials
from tests.core.conftest import Project

RUNBOOK = Path(__file__).resolve().parents[2] / "runbook"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------- implicit localhost


@pytest.mark.parametrize("name", LOCALHOST_NAMES)
def test_every_localhost_name_is_reached_locally_on_every_path(name: str, tmp_path: Path) -> None:
    inv = load_inventory(["web1,"])  # an inventory without it
    assert is_localhost(name) and names_localhost(name)
    assert inv.select(name) == [name]  # the pattern selects the implicit localhost
    hv = implicit_host_vars(name, None)
    assert hv["ansible_connection"] == "local"
    assert inv.host_vars(name)["ansible_connection"] == "local"  # the inventory says the same
    assert HostSpec.from_vars(name, hv).connection == "local"  # and the transport
    assert HostSpec.from_vars(name, {}).connection == "local" == connection_for(name, {})
    assert HostSpec.from_vars(name, {"ansible_host": "10.0.0.9"}).connection == "ssh"


@pytest.mark.parametrize("name", ["web1", "localhost2", "127.0.0.2", "!localhost"])
def test_other_names_are_not_localhost(name: str) -> None:
    assert not is_localhost(name) and not names_localhost(name)
    assert implicit_host_vars(name, None) == {}
    assert HostSpec.from_vars(name, {}).connection == "ssh"


def test_an_inventory_localhost_keeps_its_own_variables() -> None:
    assert implicit_host_vars("localhost", {"ansible_port": 2222}) == {"ansible_port": 2222}


def test_a_pattern_naming_localhost_among_others_names_it() -> None:
    assert names_localhost("web:localhost") and names_localhost("localhost,db")
    assert not names_localhost("web:&db")


def test_no_module_but_hostpattern_spells_the_localhost_names() -> None:
    """The names are written in one place; every other module asks `is_localhost`. (Loopback
    addresses of sockets, as in facts/net.py, are another matter: no host name there.)"""
    offenders = []
    for path in RUNBOOK.rglob("*.py"):
        if path.name == "hostpattern.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = {e.value for e in getattr(node, "elts", ()) if isinstance(e, ast.Constant)}
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and {"localhost", "127.0.0.1"} <= names:
                offenders.append(f"{path.relative_to(RUNBOOK)}:{node.lineno}")
    assert offenders == []


def test_exec_runs_a_localhost_pattern_without_an_inventory_host(project: Project) -> None:
    project.inventory("web1 ansible_host=10.255.255.1\n")
    project.runbook("l", "hosts: 127.0.0.1\nsteps:\n  - name: here\n    shell: echo on-this-machine\n")
    res, doc = project.exec_json("l")
    assert res.exit_code == 0, res.output
    assert "on-this-machine" in project.steps(doc, "127.0.0.1")["here"]["stdout"]


# ----------------------------------------------------------------------- credentials in URLs/DSNs

DSNS = [
    "postgresql://app:s3cr3t-pw@db.example:5432/app",
    "postgresql://app@db/app?password=s3cr3t-pw&sslmode=require",
    "host=db user=app password=s3cr3t-pw dbname=app",
    "host=db user=app password='s3cr3t pw' dbname=app",
    "redis://:s3cr3t-pw@127.0.0.1:6379/0",
    "redis://app:s3cr3t-pw@cache/1",
]


@pytest.mark.parametrize("dsn", DSNS)
def test_a_dsn_is_masked_the_same_by_every_redactor(dsn: str) -> None:
    from runbook.audit.records import Scrubber

    shown = mask_credentials(dsn)
    assert "s3cr3t" not in shown and "***" in shown
    assert Redactor().redact(dsn) == shown  # console and JSON document
    assert Scrubber().text(dsn) == shown  # audit records
    assert Scrubber(Redactor().redact).text(dsn) == shown


def test_the_postgres_sink_names_its_dsn_masked_the_same_way() -> None:
    pytest.importorskip("psycopg")
    from runbook.audit.sinks.postgres import PostgresSink

    dsn = f"postgresql://audit:s3cr3t-pw@127.0.0.1:{_closed_port()}/runbook"
    with pytest.raises(AuditError) as err:
        PostgresSink(dsn, connect_timeout=2)
    assert mask_credentials(dsn) in err.value.message and "s3cr3t" not in err.value.message


def test_a_step_s_dsn_is_masked_the_same_in_console_json_and_audit(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RUNBOOK_AUDIT")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    url = f"redis://app:s3cr3t-pw@127.0.0.1:{_closed_port()}/0"
    shown = mask_credentials(url)
    project.runbook("r", f"hosts: localhost\nsteps:\n  - name: ping\n    redis.ping: {{url: '{url}', timeout: 2}}\n")
    res, doc = project.exec_json("r")
    assert res.exit_code == 1, res.output
    assert project.steps(doc)["ping"]["msg"].startswith(shown)
    audit = Path(doc["audit"]).read_text()
    assert shown in audit and "s3cr3t" not in audit
    console = project.exec("r")
    assert shown in console.stdout and "s3cr3t" not in console.stdout


# ------------------------------------------------------------------------------ numeric keywords


def test_the_keyword_tables_agree() -> None:
    from runbook.kinds.schema import json_schema

    assert set(NUMBER_KEYWORDS) <= set(STEP_KEYWORDS) and set(CONDITION_KEYWORDS) <= set(STEP_KEYWORDS)
    assert set(TEMPLATED_KEYWORDS) <= set(STEP_KEYWORDS)
    from runbook.kinds.base import registry

    modules = set(registry())
    from runbook.model.ansible_tasks import TASK_KEYWORDS

    for variant in json_schema()["$defs"]["step"]["oneOf"]:  # the schema's keywords are the model's
        assert set(variant["properties"]) - modules - {"rescue", "always"} == set(STEP_KEYWORDS) | set(TASK_KEYWORDS)


@pytest.mark.parametrize(
    ("value", "rule", "number"),
    [("3", {"integer": True}, 3), (2.0, {"integer": True}, 2), ("0.5", {}, 0.5), (7, {"positive": True}, 7)],
)
def test_to_number_keeps_what_number_problem_accepts(value, rule, number) -> None:
    assert number_problem(value, **rule) is None
    assert to_number(value, **rule) == number and type(to_number(value, **rule)) is type(number)


@pytest.mark.parametrize(
    ("value", "rule"),
    [(2.5, {"integer": True}), ("2.5", {"integer": True}), (0, {"positive": True}), (-1, {}), ("x", {})],
)
def test_to_number_refuses_what_number_problem_refuses(value, rule) -> None:
    problem = number_problem(value, **rule)
    assert problem
    with pytest.raises(ValueError) as err:
        to_number(value, **rule)
    assert str(err.value) == problem


def test_retries_2_5_is_refused_on_every_path_with_file_and_line(project: Project) -> None:
    # when the runbook is read
    path = project.runbook("lit", "hosts: localhost\nsteps:\n  - name: s\n    shell: echo\n    retries: '2.5'\n")
    res = project.plan("lit")
    assert res.exit_code == 2 and "retries must be a whole number, got 2.5" in res.output
    assert f"{path}:5:" in res.output
    # when a template is rendered for validation
    path = project.runbook(
        "tpl", "hosts: localhost\nsteps:\n  - name: s\n    shell: echo\n    retries: '{{ 2.5 }}'\n"
    )
    res = project.cli("validate", "tpl", "-i", str(project.root / "inv"))
    assert res.exit_code == 2 and "retries must be a whole number, got 2.5" in res.output
    assert f"{path}:5:" in res.output
    res = project.plan("tpl")  # a dry run renders it as a run does
    assert res.exit_code == 2 and f"{path}:4:5: retries must be a whole number, got 2.5" in res.output
    # at run time, when the value is known only then (a registered result): the same rule
    path = project.runbook(
        "late",
        "hosts: localhost\nsteps:\n  - shell: echo 2.5\n    register: r\n    changes: false\n"
        "  - name: s\n    shell: echo hi\n    retries: '{{ r.stdout }}'\n",
    )
    res, doc = project.exec_json("late")
    assert res.exit_code == 1, res.output
    msg = project.steps(doc)["s"]["msg"]
    assert "retries must be a whole number, got 2.5" in msg and f"{path}:" in msg, msg


def test_timeout_0_is_refused_at_run_time_as_when_written(project: Project) -> None:
    project.runbook("lit", "hosts: localhost\nsteps:\n  - shell: echo\n    timeout: 0\n")
    assert "timeout must be greater than 0" in project.plan("lit").output
    project.runbook(
        "late",
        "hosts: localhost\nsteps:\n  - shell: echo 0\n    register: r\n    changes: false\n"
        "  - name: s\n    shell: echo hi\n    timeout: '{{ r.stdout }}'\n",
    )
    res, doc = project.exec_json("late")
    assert res.exit_code == 1 and "timeout must be greater than 0" in project.steps(doc)["s"]["msg"]


# ------------------------------------------------------------------------------------ yes/no words


@pytest.mark.parametrize("word", sorted(BOOL_WORDS | {w.upper() for w in BOOL_WORDS} | {" yes "}))
def test_every_path_reads_a_yes_no_word_the_same(word: str) -> None:
    """Keywords, module arguments, the bool filter, conditions and host variables agree."""
    from runbook.execute.attempts import privilege_asked
    from runbook.execute.transports.hostkeys import trust_new_from_vars
    from runbook.kinds.arguments import coerce
    from runbook.kinds.flow import truth
    from runbook.render.filters import to_bool

    expected = word.strip().lower() in TRUE_WORDS
    assert word.strip().lower() in BOOL_WORDS  # a keyword (no_log: ...) accepts it when read
    assert to_bool(word) is expected
    assert truth(word) is expected
    assert truthy(word) is expected
    assert coerce(word, {"type": "boolean"}) is expected
    assert HostSpec.from_vars("web1", {"ansible_become": word}).become is expected
    assert trust_new_from_vars({"runbook_trust_new_hosts": word}) is expected
    assert privilege_asked(None, None, {"ansible_become": word}) is expected


@pytest.mark.parametrize("word", ["maybe", "2", "yess"])
def test_other_words_are_not_yes_no_words(word: str) -> None:
    from runbook.kinds.arguments import coerce
    from runbook.render.filters import FilterError, to_bool

    assert word not in BOOL_WORDS and not truthy(word)
    assert coerce(word, {"type": "boolean"}) == word  # left for the schema to refuse
    with pytest.raises(FilterError):
        to_bool(word)


# ---------------------------------------------------------------------- connection/become aliases


@pytest.mark.parametrize(
    ("what", "field", "value"),
    [
        ("host", "address", "10.0.0.7"),
        ("port", "port", 2222),
        ("user", "user", "deploy"),
        ("private_key_file", "private_key_file", "/k/id"),
        ("password", "password", "pw1"),
    ],
)
def test_every_connection_alias_reaches_the_transport(what: str, field: str, value) -> None:
    from runbook.model import connection

    for alias in connection.VARIABLES[what]:
        assert getattr(HostSpec.from_vars("web1", {alias: value}), field) == value, alias


@pytest.mark.parametrize(
    ("what", "field", "value"), [("user", "become_user", "postgres"), ("password", "become_password", "pw2")]
)
def test_every_become_alias_reaches_the_transport(what: str, field: str, value) -> None:
    """`model.become.VARIABLES` is the one table: the step's privilege and the host's agree."""
    from runbook.model import become

    for alias in become.VARIABLES[what]:
        hv = {alias: value}
        assert getattr(HostSpec.from_vars("web1", hv), field) == value == become.pick(hv, what), alias


def test_a_bad_port_alias_is_refused_by_the_validator_and_the_transport(project: Project) -> None:
    project.inventory("localhost ansible_connection=local ansible_ssh_port=99999\n")
    project.runbook("p", "hosts: localhost\nsteps:\n  - shell: echo\n    changes: false\n")
    res = project.cli("validate", "p", "-i", str(project.root / "inv"))
    assert res.exit_code == 2 and "ansible_ssh_port must be a port number from 1 to 65535" in res.output
    with pytest.raises(Exception, match="must be a port number"):
        HostSpec.from_vars("localhost", {"ansible_ssh_port": 99999})


def test_the_mask_is_written_once() -> None:
    """Every path masks with `render.secrets.MASK`; no module spells its own."""
    offenders = [
        f"{path.relative_to(RUNBOOK)}:{node.lineno}"
        for path in RUNBOOK.rglob("*.py")
        if path.name != "secrets.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value == "***"
    ]
    assert offenders == []
