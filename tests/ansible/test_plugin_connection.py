"""A host reached through a connection plugin runbook has no transport for (issue 10 item 4): its
Ansible-module steps run through ansible-runner, over that plugin; a native step aimed at it is
refused before any change. The plugin here is Ansible's local connection under another name
(tests/fixtures/ansible-connection), so it runs on this machine for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.core.conftest import REPO, Project

PLUGINS = REPO / "tests" / "fixtures" / "ansible-connection"


@pytest.fixture(autouse=True)
def _collection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(PLUGINS))


def _inventory(project: Project) -> Path:
    return project.inventory(
        f"box ansible_connection=fixture.conn.relay ansible_python_interpreter={sys.executable}\n"
    )


@pytest.mark.slow
def test_ansible_module_steps_run_over_the_plugin(project: Project, tmp_path: Path) -> None:
    _inventory(project)
    out = tmp_path / "motd"
    project.runbook(
        "np",
        f"""
        hosts: box
        steps:
          - name: line
            ansible.builtin.lineinfile: {{path: "{out}", line: hello, create: true}}
            undo: none
        """,
    )
    plan = project.plan("np")
    assert plan.exit_code == 0, plan.output
    assert not out.exists()  # check mode: nothing written
    res, doc = project.exec_json("np")
    assert res.exit_code == 0, res.output
    assert out.read_text() == "hello\n"
    assert project.steps(doc, "box")["line"]["outcome"] == "changed"


def test_a_native_step_on_such_a_host_is_refused_before_any_change(project: Project, tmp_path: Path) -> None:
    _inventory(project)
    project.runbook(
        "mixed",
        f"""
        hosts: box
        steps:
          - name: line
            ansible.builtin.lineinfile: {{path: "{tmp_path / "a"}", line: x, create: true}}
            undo: none
          - name: native copy
            copy: {{content: "x\\n", dest: "{tmp_path / "b"}"}}
        """,
    )
    res = project.exec("mixed")
    assert res.exit_code == 3, res.output
    assert "'native copy' (copy)" in res.output and "'line'" not in res.output.split("these steps cannot:")[1]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
