"""Each secret origin on its own, through the real CLI (in-process): what makes a value secret, how it
is declared, and the errors a user gets when a declaration is wrong."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from runbook.actions import Http
from runbook.actions.commands import Command
from runbook.kinds.schema import json_schema
from runbook.model.inventory import load_inventory
from tests.core.conftest import Project
from tests.security.canary import VAULT_PASSWORD, echo_server, encrypt, inline_vault

pytest.importorskip("ansible", reason="ansible-core not installed")

S1, S2, S3 = "canary-one-5e1c0a", "canary-two-9b7d44", "canary-three-c02f18"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A scratch project (as tests/core's) with the audit on: it must not hold a secret either."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "240")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY", "RUNBOOK_AUDIT_DIR", "RUNBOOK_AUDIT"):
        monkeypatch.delenv(var, raising=False)
    p = Project(tmp_path)
    (tmp_path / "playbooks").mkdir()
    p.inventory()
    return p


def audit_text(project: Project) -> str:
    return "".join(f.read_text() for f in (project.root / "audit").rglob("*.jsonl"))


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pw = tmp_path / "vault-password"
    pw.write_text(VAULT_PASSWORD + "\n")
    monkeypatch.setenv("RUNBOOK_VAULT_PASSWORD_FILE", str(pw))
    return pw


def shown(res) -> str:
    return res.stdout + res.stderr


# ------------------------------------------------------------------------------ declared secrets
def test_the_runbook_declares_secrets_whatever_their_names(project: Project) -> None:
    project.runbook(
        "r",
        f"""
        hosts: localhost
        secrets: [opaque, pwd]
        vars: {{opaque: {S1}, pwd: {S2}, api_pat: "{{{{ opaque }}}}-x"}}
        steps:
          - shell: "echo {{{{ opaque }}}} {{{{ pwd }}}} {{{{ api_pat }}}}"
        """,
    )
    res, doc = project.exec_json("r")
    assert res.exit_code == 0, res.output
    [step] = doc["hosts"]["localhost"]["steps"]
    assert step["stdout"] == "*** *** ***\n" and step["command"] == "echo *** *** ***"
    assert S1 not in shown(res) and S2 not in shown(res)
    assert S1 not in audit_text(project) and S2 not in audit_text(project)


def test_secret_on_the_command_line_declares_an_extra_var(project: Project) -> None:
    project.runbook("r", 'hosts: localhost\nsteps:\n  - shell: "echo [{{ opaque }}]"\n')
    res, doc = project.exec_json("r", "--secret", "opaque", "-e", f"opaque={S1}")
    assert res.exit_code == 0, res.output
    assert doc["hosts"]["localhost"]["steps"][0]["stdout"] == "[***]\n"
    assert S1 not in shown(res)
    project.runbook("r", 'hosts: localhost\nsteps:\n  - shell: "echo [{{ note }}]"\n')
    res, doc = project.exec_json("r", "-e", f"note={S1}")  # not declared, not a credential name
    assert doc["hosts"]["localhost"]["steps"][0]["stdout"] == f"[{S1}]\n"


def test_plan_and_validate_take_secret_too(project: Project) -> None:
    project.runbook("r", 'hosts: localhost\nsteps:\n  - shell: "echo {{ pwd }}"\n    when: "{{ pwd is version(\'1\', \'>\', strict=true) }}"\n')
    res = project.plan("r", "--secret", "pwd", "-e", f"pwd={S1}")
    assert res.exit_code == 2 and "invalid version number '***'" in shown(res)
    assert S1 not in shown(res)
    res = project.cli("validate", "r", "-i", "inv", "--secret", "pwd", "-e", f"pwd={S1}")
    assert res.exit_code == 2 and "invalid version number '***'" in shown(res)
    assert S1 not in shown(res)


@pytest.mark.parametrize(
    ("declaration", "message"),
    [("secrets: opaque token", "not a variable name"), ("secrets: {a: 1}", "must be a list"),
     ("secrets: [ok, 1x]", "'1x' is not a variable name")],
)  # fmt: skip
def test_a_wrong_secrets_declaration_is_a_validation_error(project: Project, declaration: str, message: str) -> None:
    project.runbook("r", f'hosts: localhost\n{declaration}\nsteps:\n  - shell: "true"\n')
    res = project.cli("validate", "r")
    assert res.exit_code == 2
    assert message in res.stderr and "r.yml:2" in res.stderr


def test_a_wrong_secret_option_is_a_usage_error(project: Project) -> None:
    project.runbook("r", 'hosts: localhost\nsteps:\n  - shell: "true"\n')
    res = project.exec("r", "--secret", "not-a-name")
    assert res.exit_code == 2 and "--secret 'not-a-name' is not a variable name" in res.stderr


def test_the_schema_knows_the_secrets_keyword() -> None:
    prop = json_schema()["properties"]["secrets"]
    assert prop["type"] == "array" and "secrets" in prop["description"]


# ------------------------------------------------------------------------------ vault files
def test_every_value_of_a_vault_encrypted_group_vars_file_is_secret(
    project: Project, tmp_path: Path, vault: Path
) -> None:
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts").write_text("localhost ansible_connection=local\n")
    (inv / "group_vars" / "all" / "vault.yml").write_text(
        encrypt(f"db:\n  users: [{{name: app, pw: {S1}}}]\nport_text: '{S2}'\n")
    )
    (inv / "group_vars" / "all" / "plain.yml").write_text(f"inline: {inline_vault(S3)}region: eu-west\n")
    loaded = load_inventory([str(inv)])
    assert loaded.vault_data == [{"db": {"users": [{"name": "app", "pw": S1}]}, "port_text": S2}]
    project.runbook(
        "r",
        """
        hosts: localhost
        vars:
          url: "postgres://app:{{ db.users[0].pw }}@db/app"
          encoded: "{{ port_text | b64encode }}"
        steps:
          - shell: "echo {{ db.users[0].pw }} {{ port_text }} {{ inline }} {{ region }}"
          - shell: "echo {{ url }} {{ encoded }} {{ db.users[0].pw | upper }}"
        """,
    )
    res = project.cli("exec", "r", "-i", str(inv), "--output", "json")
    assert res.exit_code == 0, res.output
    first, second = json.loads(res.stdout)["hosts"]["localhost"]["steps"]
    assert first["stdout"] == "*** *** *** eu-west\n"  # a plain group_vars value stays readable
    assert second["stdout"] == "*** *** ***\n"  # derived by templates: secrets too
    for value in (S1, S2, S3, base64.b64encode(S2.encode()).decode(), S1.upper()):
        assert value not in shown(res) and value not in audit_text(project)


def test_a_vault_encrypted_extra_vars_file_declares_its_variables(project: Project, tmp_path: Path, vault: Path) -> None:
    (tmp_path / "extra.yml").write_text(encrypt(f"release_note: {S1}\n"))
    project.runbook("r", 'hosts: localhost\nsteps:\n  - shell: "echo {{ release_note }}"\n')
    res, doc = project.exec_json("r", "-e", f"@{tmp_path / 'extra.yml'}")
    assert res.exit_code == 0, res.output
    assert doc["hosts"]["localhost"]["steps"][0]["stdout"] == "***\n"
    state = (project.root / ".runbook" / "runs" / doc["run_id"] / "state.json").read_text()
    assert S1 not in state and json.loads(state)["meta"]["secret_extra_vars"] == ["release_note"]


def test_a_vault_encrypted_vars_file_declares_its_variables(project: Project, vault: Path) -> None:
    (project.root / "playbooks" / "s.yml").write_text(encrypt(f"release_note: {S1}\n"))
    project.runbook("r", 'hosts: localhost\nvars_files: [s.yml]\nsteps:\n  - shell: "echo {{ release_note }}"\n')
    res, doc = project.exec_json("r")
    assert res.exit_code == 0, res.output
    assert doc["hosts"]["localhost"]["steps"][0]["stdout"] == "***\n"


def test_a_vault_file_without_a_password_is_a_clear_error(project: Project, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("RUNBOOK_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    (tmp_path / "extra.yml").write_text(encrypt(f"release_note: {S1}\n"))
    project.runbook("r", 'hosts: localhost\nsteps:\n  - shell: "true"\n')
    res = project.exec("r", "-e", f"@{tmp_path / 'extra.yml'}")
    assert res.exit_code == 2
    assert "no vault password is available" in res.stderr and "RUNBOOK_VAULT_PASSWORD_FILE" in res.stderr


# ------------------------------------------------------------------------------ http credentials
def test_url_userinfo_is_sent_as_basic_auth_and_never_shown(project: Project) -> None:
    with echo_server() as (port, seen):
        project.runbook(
            "r",
            f"""
            hosts: localhost
            steps:
              - http.get: "http://deploy:{S1}@127.0.0.1:{port}/a"
                register: a
              - http.request: {{url: "http://127.0.0.1:{port}/b", method: POST, body: "x",
                                headers: {{Authorization: "token {S2}", X-Api-Key: "{S3}"}}}}
                register: b
              - shell: "echo {{{{ a.json.headers | to_json | quote }}}} {{{{ b.json.headers | to_json | quote }}}}"
            """,
        )
        res, doc = project.exec_json("r", "-v")
    assert res.exit_code == 0, res.output
    assert seen[0]["Host"] == f"127.0.0.1:{port}"
    assert seen[0]["Authorization"] == "Basic " + base64.b64encode(f"deploy:{S1}".encode()).decode()
    assert seen[1]["Authorization"] == f"token {S2}" and seen[1]["X-Api-Key"] == S3
    for value in (S1, S2, S3, base64.b64encode(f"deploy:{S1}".encode()).decode()):
        assert value not in shown(res) and value not in audit_text(project)
    assert '"Authorization": "***"' in doc["hosts"]["localhost"]["steps"][2]["stdout"]


def test_an_http_action_knows_its_credentials() -> None:
    action = Http("GET", "https://u%40x:p%2Fw@host:8443/p?q=1", headers={"Cookie": "s=abc123"})
    assert action.request_headers()["Authorization"] == "Basic " + base64.b64encode(b"u@x:p/w").decode()
    assert set(action.secrets()) >= {"p/w", "p%2Fw", "s=abc123", action.request_headers()["Authorization"]}
    assert action.shown() == "GET https://host:8443/p?q=1"
    explicit = Http("GET", "https://u:pw@host/", headers={"authorization": "Bearer tok123"})
    assert explicit.request_headers() == {"authorization": "Bearer tok123"}
    assert "tok123" in explicit.secrets()


def test_a_prometheus_url_with_credentials_sends_basic_auth(project: Project) -> None:
    with echo_server() as (port, seen):
        project.runbook(
            "r",
            f"""
            hosts: localhost
            preflight:
              - prometheus.query: {{url: "http://metrics:{S1}@127.0.0.1:{port}", query: "up"}}
            steps:
              - shell: "true"
            """,
        )
        res = project.exec("r")
    assert res.exit_code == 3  # the echo server is no Prometheus: the check fails, after sending
    assert seen[0]["Authorization"] == "Basic " + base64.b64encode(f"metrics:{S1}".encode()).decode()
    assert S1 not in shown(res)


# ------------------------------------------------------------------------------ no_log and plans
def test_plan_never_shows_a_no_log_step(project: Project) -> None:
    project.runbook(
        "r",
        f"""
        hosts: localhost
        steps:
          - shell: "curl -d {S1} https://example.invalid/"
            no_log: true
          - copy: {{content: "{S2}", dest: /tmp/never-written-{S2}}}
            no_log: true
        """,
    )
    res = project.plan("r")
    assert res.exit_code == 0, res.output
    assert S1 not in res.output and S2 not in res.output and "(output hidden: no_log)" in res.output
    res = project.plan("r", "--output", "json")
    assert S1 not in res.stdout and S2 not in res.stdout
    planned = [p for s in json.loads(res.stdout)["hosts"]["localhost"]["steps"] for p in s["planned"]]
    assert planned and all(p["summary"] == "(output hidden: no_log)" and not p["diff"] for p in planned)


# ------------------------------------------------------------------------------ command handoff
def test_a_script_holding_a_secret_is_private_others_are_not(project: Project) -> None:
    from runbook.actions import Run
    from runbook.execute.driver import Drive
    from runbook.execute.transports.base import HostSpec
    from runbook.execute.transports.local import LocalTransport
    from runbook.render.secrets import Redactor

    ran: list[Command] = []

    class Recording(LocalTransport):
        def run(self, command, *, timeout=None, redact=None):
            ran.append(command)
            return super().run(command, timeout=timeout, redact=redact)

    drive = Drive(Recording(HostSpec("localhost", "localhost", connection="local")), redact=Redactor([S1]).redact)
    out = drive.perform(Run(Command.shell(f"echo {S1} | tr a-z A-Z; cat", stdin=b"in\n")))
    assert out.stdout == f"{S1.upper()}\nin\n" and out.rc == 0
    drive.perform(Run(Command.shell("echo plain")))
    assert [c.private for c in ran] == [True, False]


def test_declared_names_stay_secret_for_a_later_rollback(project: Project, tmp_path: Path) -> None:
    """The state keeps the declared names (never values): `runbook rollback` masks them too."""
    project.runbook(
        "r",
        f"""
        hosts: localhost
        vars: {{opaque: {S1}}}
        steps:
          - shell: "echo {{{{ opaque }}}}"
            undo:
              shell: "echo undone {{{{ opaque }}}} >&2; false"
        """,
    )
    res, doc = project.exec_json("r", "--secret", "opaque")
    assert res.exit_code == 0, res.output
    state = json.loads((project.root / ".runbook" / "runs" / doc["run_id"] / "state.json").read_text())
    assert state["meta"]["secret_names"] == ["opaque"]
    res = project.cli("rollback", "r", "--run", doc["run_id"], "--yes")  # the undo fails, and says why
    assert res.exit_code == 4, res.output
    assert "undone ***" in res.output
    assert S1 not in shown(res) and S1 not in audit_text(project)


def test_a_secret_is_masked_as_printed_quoted_escaped_or_line_by_line(project: Project) -> None:
    project.runbook(
        "r",
        """
        hosts: localhost
        secrets: [quoted, key]
        vars:
          quoted: "it's \\"{{ 'x' }}\\" S1"
          key: "-----BEGIN KEY-----\\nAAAAB3NzaC1yc2EAAAADAQABAAABgQC\\n-----END KEY-----"
        steps:
          - shell: "echo {{ quoted | quote }}; echo {{ quoted | to_json | quote }}; echo {{ quoted | urlencode }}"
          - shell: "printf '%s\\\\n' {{ key | quote }}"
        """.replace("S1", S1),
    )
    res, doc = project.exec_json("r")
    assert res.exit_code == 0, res.output
    quoted, key = doc["hosts"]["localhost"]["steps"]
    assert S1 not in shown(res) and "AAAAB3NzaC1yc2EAAAADAQABAAABgQC" not in shown(res)
    assert quoted["stdout"].count("***") == 3 and "***" in key["stdout"]


def test_every_variable_of_a_vault_encrypted_inventory_is_secret_but_not_its_hosts(
    project: Project, tmp_path: Path, vault: Path
) -> None:
    (tmp_path / "hosts.yml").write_text(
        encrypt(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
            f"      release_tag: {S1}\n  vars:\n    region_code: {S2}\n"
        )
    )
    loaded = load_inventory([str(tmp_path / "hosts.yml")])
    assert sorted(v for d in loaded.vault_data for v in d.values()) == sorted([S1, S2])
    project.runbook("r", 'hosts: all\nsteps:\n  - shell: "echo {{ inventory_hostname }} {{ release_tag }} {{ region_code }}"\n')
    res = project.cli("exec", "r", "-i", str(tmp_path / "hosts.yml"), "--output", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["hosts"]["localhost"]["steps"][0]["stdout"] == "localhost *** ***\n"
    assert S1 not in shown(res) and S2 not in shown(res)


def test_a_vault_value_is_masked_even_where_it_shows_before_it_is_used(
    project: Project, tmp_path: Path, vault: Path
) -> None:
    """An inline !vault value is decrypted before the run: a step that prints it (reading a config
    that already holds it) before any template uses it, or without any, shows ***."""
    (tmp_path / "app.conf").write_text(f"name=app\nsecond={S2}\n")
    project.inventory("localhost ansible_connection=local\n")
    (project.root / "host_vars").mkdir()
    (project.root / "host_vars" / "localhost.yml").write_text(
        f"old_secret: {inline_vault(S2)}never_used: {inline_vault(S3)}"
    )
    project.runbook(
        "r",
        f"""
        hosts: localhost
        steps:
          - shell: "cat {tmp_path / 'app.conf'}; echo {S3}"
          - shell: "echo {{{{ old_secret | length }}}}"
        """,
    )
    res, doc = project.exec_json("r")
    assert res.exit_code == 0, res.output
    first = doc["hosts"]["localhost"]["steps"][0]
    assert first["stdout"] == "name=app\nsecond=***\n***\n"
    assert S2 not in shown(res) and S3 not in shown(res) and S2 not in audit_text(project)


def test_a_declared_secret_that_a_step_registers_is_masked(project: Project, tmp_path: Path) -> None:
    project.runbook(
        "r",
        f"""
        hosts: localhost
        secrets: [issued]
        steps:
          - shell: "echo {S1}"
            register: issued
          - shell: "echo again {{{{ issued.stdout }}}} {{{{ issued.stdout | upper }}}}"
        """,
    )
    res, doc = project.exec_json("r")
    assert res.exit_code == 0, res.output
    first, second = doc["hosts"]["localhost"]["steps"]
    assert first["stdout"] == "***\n" and second["stdout"] == "again *** ***\n"
    assert S1 not in shown(res) and S1.upper() not in shown(res) and S1 not in audit_text(project)


def test_a_password_written_in_a_command_or_a_client_dsn_is_a_secret(project: Project) -> None:
    project.runbook(
        "r",
        f"""
        hosts: localhost
        steps:
          - shell: "echo connecting; : 'host=db password={S1} dbname=app'; echo {S1} | rev | rev"
          - shell: "echo postgresql://app:{S2}@127.0.0.1/app >/dev/null; echo {S2}"
        """,
    )
    res, doc = project.exec_json("r")
    assert res.exit_code == 0, res.output
    first, second = doc["hosts"]["localhost"]["steps"]
    assert first["stdout"] == "connecting\n***\n" and second["stdout"] == "***\n"
    assert S1 not in shown(res) and S2 not in shown(res) and S1 not in audit_text(project)
