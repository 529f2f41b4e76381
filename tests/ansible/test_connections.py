"""ansible_connection plugin names: the native ones map to runbook's transports; a host behind a
plugin runbook has no transport for (community.docker.docker) takes only Ansible-run steps, and a
native step aimed at it is refused before anything runs (validate reports it, exec/plan exit 3)."""

from __future__ import annotations

import pytest

from runbook.execute.transports.base import HostSpec
from runbook.kinds.base import KnownModules
from runbook.model.connection import connection_is_native, native_connection
from runbook.model.runbook import load_runbook
from runbook.plan.connections import needs_native_transport
from tests.core.conftest import Project


@pytest.mark.parametrize(
    ("name", "transport"),
    [("ssh", "ssh"), ("ansible.builtin.ssh", "ssh"), ("smart", "ssh"), ("paramiko_ssh", "paramiko"),
     ("ansible.builtin.paramiko_ssh", "paramiko"), ("paramiko", "paramiko"), ("local", "local"),
     ("ansible.builtin.local", "local"), ("", "ssh")],
)  # fmt: skip
def test_native_plugin_names(name: str, transport: str) -> None:
    assert native_connection(name) == transport and connection_is_native(name)
    spec = HostSpec.from_vars("h", {"ansible_connection": name} if name else {})
    assert spec.connection == transport and spec.native_transport


@pytest.mark.parametrize("name", ["community.docker.docker", "docker", "winrm", "ansible.netcommon.network_cli"])
def test_plugins_without_native_transport(name: str) -> None:
    assert not connection_is_native(name)
    spec = HostSpec.from_vars("h", {"ansible_connection": name})
    assert spec.connection == name and not spec.native_transport


def test_fqcn_local_connection_runs_a_step(project: Project) -> None:
    project.inventory("box ansible_connection=ansible.builtin.local\n")
    project.runbook("r", 'hosts: box\nsteps:\n  - shell: "touch ran.txt"\n')
    res = project.exec("r")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert (project.root / "ran.txt").exists()


def _docker_project(project: Project) -> None:
    project.inventory("box ansible_connection=local\nctr ansible_connection=community.docker.docker\n")
    project.runbook(
        "native",
        'hosts: all\nsteps:\n  - name: write marker\n    shell: "touch {{ inventory_hostname }}.txt"\n',
    )
    project.runbook(
        "ansible_only",
        "hosts: ctr\nsteps:\n  - debug: {msg: hello}\n  - set_fact: {x: 1}\n",
    )


def test_native_step_on_plugin_host_is_refused_before_any_change(project: Project) -> None:
    _docker_project(project)
    for res in (project.exec("native"), project.plan("native")):
        assert res.exit_code == 3, res.stdout + res.stderr
        text = res.stdout + res.stderr
        assert "ansible_connection='community.docker.docker'" in text
        assert "only Ansible-module steps" in text and "'write marker' (shell)" in text
        assert "nothing was changed" in text
    assert not (project.root / "box.txt").exists()  # the other host did not run either


def test_validate_reports_native_steps_on_plugin_hosts(project: Project) -> None:
    _docker_project(project)
    res = project.cli("validate", "native", "-i", str(project.root / "inv"))
    assert res.exit_code == 2
    assert "host ctr: ansible_connection='community.docker.docker'" in res.stderr
    assert "box:" not in res.stderr  # the local host is fine


def test_steps_that_do_not_use_the_transport_run_on_plugin_hosts(project: Project) -> None:
    _docker_project(project)
    assert project.cli("validate", "ansible_only", "-i", str(project.root / "inv")).exit_code == 0
    res = project.exec("ansible_only")
    assert res.exit_code == 0, res.stdout + res.stderr


def test_step_trait(project: Project) -> None:
    path = project.runbook(
        "t",
        "hosts: all\nsteps:\n  - shell: 'true'\n  - ansible.playbook: site.yml\n"
        "  - shell: 'true'\n    delegate_to: localhost\n",
    )
    steps = load_runbook(path, KnownModules()).all_steps()
    assert [needs_native_transport(s) for s in steps] == [True, False, False]


def test_deploy_lock_on_plugin_host_is_refused(project: Project) -> None:
    """The deploy lock is a file on the host: a plugin host cannot hold it, so the run is refused."""
    _docker_project(project)
    path = project.root / "playbooks" / "ansible_only.yml"
    path.write_text("lock: true\n" + path.read_text())
    res = project.exec("ansible_only")
    assert res.exit_code == 3 and "the deploy lock (lock:)" in res.stdout + res.stderr
