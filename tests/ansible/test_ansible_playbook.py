"""ansible.playbook runs a real playbook through ansible-runner against the run's inventory."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.cli.main import cli

pytestmark = pytest.mark.slow

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: write the marker
      copy: {{content: "deployed by ansible\\n", dest: "{dest}"}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "site.yml").write_text(PLAYBOOK.format(dest=tmp_path / "marker.txt"))
    (tmp_path / "playbooks" / "via-ansible.yml").write_text(
        textwrap.dedent(
            """\
            name: via-ansible
            hosts: all
            steps:
              - name: Converge with Ansible
                ansible.playbook: {playbook: site.yml}
            """
        )
    )
    (tmp_path / "inv").write_text("localhost ansible_connection=local ansible_python_interpreter=python3\n")
    return tmp_path


def test_playbook_runs_for_real_and_reports_changes(project: Path) -> None:
    res = CliRunner().invoke(cli, ["exec", "via-ansible", "-i", "inv", "--output", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    step = doc["hosts"]["localhost"]["steps"][0]
    assert step["outcome"] == "changed"
    assert (project / "marker.txt").read_text() == "deployed by ansible\n"


def test_dry_run_uses_check_mode_and_changes_nothing(project: Path) -> None:
    res = CliRunner().invoke(cli, ["plan", "via-ansible", "-i", "inv", "--output", "json"])
    assert res.exit_code == 0, res.output
    assert not (project / "marker.txt").exists()
    step = json.loads(res.stdout)["hosts"]["localhost"]["steps"][0]
    assert "--check" in step["command"]


def test_failing_playbook_fails_the_step(project: Path) -> None:
    (project / "playbooks" / "site.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: boom\n      command: /bin/false\n"
    )
    res = CliRunner().invoke(cli, ["exec", "via-ansible", "-i", "inv", "--output", "json"])
    assert res.exit_code == 1
    step = json.loads(res.stdout)["hosts"]["localhost"]["steps"][0]
    assert step["outcome"] == "failed"
    assert "boom" in step["msg"]
