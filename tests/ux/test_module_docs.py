"""What each module registers, its arguments and traits: one home (the kind's ``registers``), shown
by `runbook schema` and `runbook doc`; runbooks found by their `name:`; completion of names."""

from __future__ import annotations

import json

import pytest
from click.shell_completion import ShellComplete

from runbook.cli.main import cli
from runbook.kinds import base as kinds
from tests.core.conftest import Project

COMMON = set(kinds.COMMON_REGISTERS) | {"stdout_lines", "stderr_lines"}


def test_every_kind_documents_what_it_registers_in_one_place() -> None:
    for name, cls in kinds.registry().items():
        assert isinstance(cls.registers, dict), name
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in cls.registers.items()), name
        assert not set(cls.registers) & set(kinds.COMMON_REGISTERS), name  # the common ones live once


def test_the_schema_carries_the_registers(project: Project) -> None:
    schema = json.loads(project.cli("schema").stdout)
    (backup,) = [v for v in schema["$defs"]["step"]["oneOf"] if v["required"] == ["postgres.backup"]]
    assert {"path", "sha256"} <= set(backup["x-registers"]) and "rc" in backup["x-registers"]
    assert "path: the backup file on the host" in backup["description"]
    assert "percentage" in schema["properties"]["serial"]["description"]
    assert "batch size" in schema["properties"]["serial"]["description"]


REGISTERING = """
name: registering
hosts: localhost
vars:
  d: "{root}"
steps:
  - {{name: copy, copy: {{content: "x=1\\n", dest: "{{{{ d }}}}/c.env", mode: "0600"}}, register: r}}
  - {{name: copy-keys, debug: {{msg: "{{{{ r.keys() | list | sort | join(',') }}}}"}}}}
  - {{name: file, file: {{path: "{{{{ d }}}}/dir", state: directory}}, register: r}}
  - {{name: file-keys, debug: {{msg: "{{{{ r.keys() | list | sort | join(',') }}}}"}}}}
  - {{name: memory, check.memory: {{min_mb: 1}}, register: r}}
  - {{name: memory-keys, debug: {{msg: "{{{{ r.keys() | list | sort | join(',') }}}}"}}}}
  - {{name: disk, check.disk: {{path: /, min_free_mb: 1}}, register: r}}
  - {{name: disk-keys, debug: {{msg: "{{{{ r.keys() | list | sort | join(',') }}}}"}}}}
  - {{name: port, check.port: {{port: 9, host: 127.0.0.1, state: free}}, register: r}}
  - {{name: port-keys, debug: {{msg: "{{{{ r.keys() | list | sort | join(',') }}}}"}}}}
  - {{name: version, check.version: {{of: python, command: "python3 --version", min: "3.0"}}, register: r}}
  - {{name: version-keys, debug: {{msg: "{{{{ r.keys() | list | sort | join(',') }}}}"}}}}
  - {{name: env, check.env_file: {{path: "{{{{ d }}}}/c.env", require: [x]}}, register: r}}
  - {{name: env-keys, debug: {{msg: "{{{{ r.keys() | list | sort | join(',') }}}}"}}}}
  - {{name: wait, wait: {{path: "{{{{ d }}}}/c.env", timeout: 5}}, register: r}}
  - {{name: wait-keys, debug: {{msg: "{{{{ r.keys() | list | sort | join(',') }}}}"}}}}
"""


def test_what_kinds_really_register_is_what_they_document(project: Project) -> None:
    project.runbook("registering", REGISTERING.format(root=project.root / "out"))
    res, doc = project.exec_json("registering")
    assert res.exit_code == 0, doc
    steps = project.steps(doc)
    modules = {"copy": "copy", "file": "file", "memory": "check.memory", "disk": "check.disk",
               "port": "check.port", "version": "check.version", "env": "check.env_file", "wait": "wait"}  # fmt: skip
    for label, module in modules.items():
        registered = set(steps[f"{label}-keys"]["msg"].split(",")) - COMMON
        documented = set(kinds.registry()[module].registers)
        assert registered <= documented, (module, registered - documented)
        assert len(documented - registered) <= 1, (module, documented - registered)  # one optional field


def test_doc_of_a_module_reads_like_ansible_doc(project: Project) -> None:
    res = project.cli("doc", "postgres.backup")
    assert res.exit_code == 0, res.output
    out = res.stdout
    for part in ("> POSTGRES.BACKUP", "ARGUMENTS", "dsn (string, required)", "format (one of: custom | plain | tar, default: custom)",
                 "timeout (number, default: 3600)", "REGISTERS", "path: the backup file",
                 "sha256:", "mutates: yes", "undo:", "EXAMPLE"):  # fmt: skip
        assert part in out, part
    assert "postgres.backup:" in out.split("EXAMPLE", 1)[1]
    assert max(len(line) for line in out.splitlines() if not line.startswith("    ")) <= 80


def test_doc_json_and_list(project: Project) -> None:
    doc = json.loads(project.cli("doc", "check.memory", "--json").stdout)
    assert doc["mutates"].startswith("no") and "available_mb" in doc["registers"]
    assert {a["name"] for a in doc["arguments"]} >= {"min_mb"}
    listing = project.cli("doc", "--list").stdout
    names = [line.split()[0] for line in listing.splitlines()]
    assert names == sorted(kinds.registry())
    assert all(len(line) <= 80 for line in listing.splitlines())


def test_doc_of_an_unknown_module_suggests_one(project: Project) -> None:
    res = project.cli("doc", "postgres.bakup")
    assert res.exit_code == 2 and "did you mean postgres.backup" in res.output


def test_a_module_no_shipped_playbook_uses_gets_a_generated_example(project: Project) -> None:
    from runbook.cli.doc_cmd import shipped_example

    used = set()
    for name in kinds.registry():
        text, source = shipped_example(name)
        assert f"{name}:" in text, name
        if source:
            used.add(name)
    assert "postgres.backup" in used and "shell" in used


@pytest.mark.parametrize("how", ["file", "name"])
def test_show_and_exec_find_a_runbook_by_its_name(project: Project, how: str) -> None:
    project.runbook("2024-rotate", 'name: "rotate certificates"  # the name people say\nhosts: localhost\nsteps:\n  - debug: {msg: hi}\n')
    which = "2024-rotate" if how == "file" else "rotate certificates"
    res = project.cli("show", which)
    assert res.exit_code == 0 and "rotate certificates" in res.stdout
    assert project.exec(which).exit_code == 0
    listing = json.loads(project.cli("list", "--json").stdout)
    assert [(r["name"], r["file"]) for r in listing] == [("rotate certificates", "2024-rotate")]


def test_two_runbooks_with_the_same_name_are_ambiguous(project: Project) -> None:
    project.runbook("a", "name: same\nhosts: localhost\nsteps: [{debug: {msg: a}}]\n")
    project.runbook("b", "name: same\nhosts: localhost\nsteps: [{debug: {msg: b}}]\n")
    res = project.cli("show", "same")
    assert res.exit_code == 2 and "several runbooks are named 'same'" in res.output


def _complete(args: list[str], incomplete: str) -> list[str]:
    comp = ShellComplete(cli, {}, "runbook", "_RUNBOOK_COMPLETE")
    return [c.value for c in comp.get_completions(args, incomplete)]


def test_shell_completion_of_runbook_names(project: Project) -> None:
    project.runbook("deploy-web", "name: web-deploy\nhosts: localhost\nsteps: [{debug: {msg: a}}]\n")
    project.runbook("backup", "hosts: localhost\nsteps: [{debug: {msg: a}}]\n")
    assert _complete(["exec"], "") == ["backup", "deploy-web", "web-deploy"]
    assert _complete(["plan"], "dep") == ["deploy-web"]
    assert _complete(["show"], "web") == ["web-deploy"]
    assert _complete(["rollback"], "b") == ["backup"]
    assert "postgres.backup" in _complete(["doc"], "postgres.")


@pytest.mark.parametrize(
    "written, name",
    [("'it''s late'", "it's late"), ('"tab\\there"', "tab\there"), ("plain: colon", None), ("deploy #1  # c", "deploy")],
)
def test_a_name_is_read_as_yaml_reads_it(project: Project, written: str, name: str | None) -> None:
    project.runbook("book", f"name: {written}\nhosts: localhost\nsteps: [{{debug: {{msg: a}}}}]\n")
    from runbook.cli.common import runbook_names

    found = dict((n, p.name) for p, n in runbook_names())
    if name is None:  # not YAML: the runbook is invalid, and no name is made up for it
        assert project.cli("validate", "book").exit_code == 2
        return
    assert found.get(name) == "book.yml", found
    assert project.cli("show", name).exit_code == 0
