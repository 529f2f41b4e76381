"""The read-only commands: list, show, schema, validate, inventory, --help/--version."""

from __future__ import annotations

import json
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from tests.core.conftest import REPO, Project

SMOKE = REPO / "playbooks" / "local-smoke.yml"


@pytest.fixture
def two(project: Project) -> Project:
    project.runbook(
        "alpha",
        """
        description: |
          Deploy alpha.
          Second line.
        hosts: localhost
        preflight:
          - check.disk: {path: /, min_free_mb: 1}
        steps:
          - name: Write it
            copy: {content: x, dest: /tmp/x}
            tags: [config]
          - shell: echo hi
            when: false
        """,
    )
    project.runbook("beta", "hosts: localhost\nsteps:\n  - debug: {msg: hi}\n")
    return project


def test_list(two: Project) -> None:
    res = two.cli("list")
    assert res.exit_code == 0
    assert "alpha" in res.stdout and "Deploy alpha." in res.stdout and "beta" in res.stdout
    rows = json.loads(two.cli("list", "--json").stdout)
    assert [(r["name"], r["preflight"], r["steps"], r["description"]) for r in rows] == [
        ("alpha", 1, 2, "Deploy alpha."),
        ("beta", 0, 1, ""),
    ]


def test_list_marks_an_invalid_runbook_instead_of_failing(two: Project) -> None:
    two.runbook("gamma", "hosts: localhost\nsteps:\n  - shel: x\n")
    rows = {r["name"]: r for r in json.loads(two.cli("list", "--json").stdout)}
    assert rows["gamma"]["description"].startswith("INVALID: unknown module 'shel'")


def test_list_follows_runbook_path(two: Project, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "delta.yml").write_text("hosts: localhost\nsteps:\n  - debug: {msg: d}\n")
    monkeypatch.setenv("RUNBOOK_PATH", str(extra))
    names = [r["name"] for r in json.loads(two.cli("list", "--json").stdout)]
    assert names == ["alpha", "beta", "delta"]
    assert two.cli("exec", "delta", "-i", "inv").exit_code == 0


def test_show(two: Project) -> None:
    res = two.cli("show", "alpha")
    assert res.exit_code == 0
    out = res.stdout
    assert "Deploy alpha." in out and "hosts: localhost" in out
    assert "PREFLIGHT" in out and "check.disk" in out
    assert "1. Write it copy" in out and "tags config" in out
    assert "when [False]" in out
    assert "ROLLBACK: auto" in out


def test_show_unknown_name(two: Project) -> None:
    res = two.cli("show", "nope")
    assert res.exit_code == 2
    assert "available: alpha, beta" in res.stderr


def test_schema_is_a_valid_json_schema_and_the_shipped_runbook_conforms(project: Project) -> None:
    res = project.cli("schema")
    assert res.exit_code == 0
    schema = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(yaml.safe_load(SMOKE.read_text()))
    bad = yaml.safe_load("hosts: all\nstepz: []\n")
    assert not validator.is_valid(bad)
    bad_step = yaml.safe_load("hosts: all\nsteps:\n  - copy: {dset: /x}\n")
    assert not validator.is_valid(bad_step)


def test_schema_covers_the_test_runbooks_too(project: Project) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(project.cli("schema").stdout))
    from tests.core import test_engine_phases as phases

    doc = yaml.safe_load("hosts: localhost\nsteps:" + phases.CHANGES + phases.ALWAYS)
    validator.validate(doc)


def test_validate_all_ok(two: Project) -> None:
    res = two.cli("validate", "-i", "inv")
    assert res.exit_code == 0, res.output
    assert "ok:" in res.stdout and "alpha.yml" in res.stdout and "beta.yml" in res.stdout


def test_validate_reports_undefined_variables_with_step_and_host(project: Project) -> None:
    project.inventory("h1 ansible_connection=local color=red\nh2 ansible_connection=local\n")
    path = project.runbook(
        "colors",
        """
        hosts: all
        steps:
          - name: Paint
            debug: {msg: "{{ color }}"}
          - name: Guarded
            debug: {msg: "{{ color }}"}
            when: color is defined
          - name: Registered later
            debug: {msg: "{{ later.stdout }}"}
          - shell: echo
            register: later
        """,
    )
    res = project.cli("validate", "colors", "-i", "inv")
    assert res.exit_code == 2
    err = res.stderr
    assert f"{path}:4:5: step 'Paint' (steps[0]): undefined variable: 'color' is undefined" in err
    assert "(for host h2)" in err and "(for host h1)" not in err
    assert "Guarded" not in err and "Registered later" not in err
    assert "1 problem(s) found" in err
    # the same runbook is fine with the variable given
    assert project.cli("validate", "colors", "-i", "inv", "-e", "color=blue").exit_code == 0


def test_validate_checks_template_files(project: Project) -> None:
    project.template("app.j2", "name={{ app_name }}\n")
    project.runbook(
        "tpl",
        """
        hosts: localhost
        steps:
          - name: Render
            template: {src: app.j2, dest: /tmp/app}
          - name: Missing source
            template: {src: nope.j2, dest: /tmp/app}
        """,
    )
    res = project.cli("validate", "tpl", "-i", "inv")
    assert res.exit_code == 2
    assert "in template app.j2: undefined variable: 'app_name' is undefined" in res.stderr
    assert "template source not found: nope.j2" in res.stderr


def test_validate_the_shipped_runbook(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    res = project.cli("validate", "local-smoke")
    assert res.exit_code == 0, res.output


INI = """
[web]
web[01:02].example.com http_port=8080

[db]
db1 ansible_host=10.0.0.5 ansible_port=2222

[prod:children]
web
db

[prod:vars]
env=production
"""


def test_inventory_prints_ansible_like_json(project: Project) -> None:
    inv = project.inventory(INI, name="hosts.ini")
    res = project.cli("inventory", "-i", str(inv))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["all"]["children"] == ["ungrouped", "prod"]
    assert doc["prod"]["children"] == ["web", "db"]
    assert doc["web"]["hosts"] == ["web01.example.com", "web02.example.com"]
    assert doc["_meta"]["hostvars"]["db1"] == {
        "ansible_host": "10.0.0.5",
        "ansible_port": 2222,
        "env": "production",
    }
    assert doc["_meta"]["hostvars"]["web02.example.com"] == {"http_port": 8080, "env": "production"}
    if shutil.which("ansible-inventory"):  # the oracle, when installed
        oracle = subprocess.run(
            ["ansible-inventory", "--list", "-i", str(inv)], capture_output=True, text=True, check=True
        )
        assert doc == json.loads(oracle.stdout)


def test_inventory_host_and_errors(project: Project) -> None:
    inv = project.inventory(INI, name="hosts.ini")
    res = project.cli("inventory", "-i", str(inv), "--host", "db1")
    assert json.loads(res.stdout)["ansible_port"] == 2222
    res = project.cli("inventory", "-i", "missing.ini")
    assert res.exit_code == 2
    assert "inventory not found: missing.ini" in res.stderr


def test_help_and_version(project: Project) -> None:
    res = project.cli("--help")
    assert res.exit_code == 0
    for cmd in ("exec", "plan", "rollback", "validate", "list", "show", "schema", "inventory"):
        assert cmd in res.stdout
    assert "130 interrupted" in res.stdout
    res = project.cli("--version")
    assert res.exit_code == 0 and "runbook" in res.stdout
