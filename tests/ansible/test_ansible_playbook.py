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


SECRET = "pb-Sekr3t-value-42"


def test_run_vars_and_extra_vars_reach_the_playbook(project: Path) -> None:
    (project / "playbooks" / "site.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - copy: {content: \"{{ greeting }} {{ who }} {{ token }}\\n\", dest: \"" + str(project / "vars.txt") + "\"}\n"
        "      no_log: true\n"
    )
    (project / "playbooks" / "via-ansible.yml").write_text(
        "name: via-ansible\nhosts: all\nsecrets: [token]\n"
        f'vars: {{greeting: "hello {{{{ inventory_hostname }}}}", token: "{SECRET}"}}\n'
        "steps:\n  - name: Converge with Ansible\n    ansible.playbook: {playbook: site.yml}\n    undo: none\n"
    )
    from runbook.execute.clients import ansible_io

    seen: list[str] = []
    real = ansible_io.run

    def spying(pdd: Path, **kw: object) -> object:
        try:
            return real(pdd, **kw)
        finally:
            seen.extend(p.read_text(errors="replace") for p in pdd.rglob("*") if p.is_file())

    import pytest as _pytest

    mp = _pytest.MonkeyPatch()
    mp.setattr(ansible_io, "run", spying)
    try:
        res = CliRunner().invoke(cli, ["exec", "via-ansible", "-i", "inv", "-e", "who=operator", "--output", "json"])
    finally:
        mp.undo()
    assert res.exit_code == 0, res.output
    assert (project / "vars.txt").read_text() == f"hello localhost operator {SECRET}\n"
    text = "\n".join(seen)
    assert "$ANSIBLE_VAULT" in text and SECRET not in text  # env/extravars: the secret vaulted
    assert "\x1b[" not in res.stdout  # no colour codes in what was captured


def test_plan_shows_would_change(project: Path) -> None:
    res = CliRunner().invoke(cli, ["plan", "via-ansible", "-i", "inv", "--output", "json"])
    assert res.exit_code == 0, res.output
    step = json.loads(res.stdout)["hosts"]["localhost"]["steps"][0]
    assert step["outcome"] == "changed" and step["msg"].startswith("would change")
    assert step["planned"] and step["planned"][0]["kind"] == "change"
    assert "deployed by ansible" in step["planned"][0]["diff"]
    assert not (project / "marker.txt").exists()


def test_a_sigkilled_run_leaves_no_private_dir_behind(project: Path) -> None:
    """SIGKILL mid-playbook: its private data dir is removed by the next run of an Ansible step."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from runbook.execute.clients import ansible_io

    (project / "playbooks" / "slow.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: sleep 30\n"
    )
    (project / "playbooks" / "slow-rb.yml").write_text(
        "name: slow\nhosts: all\nsteps:\n  - ansible.playbook: {playbook: slow.yml}\n    undo: none\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "RUNBOOK_AUDIT": "0"}
    p = subprocess.Popen(
        [sys.executable, "-m", "runbook.cli.main", "exec", "slow-rb", "-i", "inv", "--yes"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        mine: list[Path] = []
        while time.monotonic() < deadline and not mine:
            mine = list(ansible_io.root().glob(f"{p.pid}-*"))
            time.sleep(0.2)
        assert mine, "the run never made its private data dir"
        time.sleep(1.0)
    finally:
        os.killpg(p.pid, signal.SIGKILL)  # the CLI and the ansible-playbook it started
        p.wait()
    assert mine[0].exists()  # SIGKILL: nothing could clean up
    res = CliRunner().invoke(cli, ["exec", "via-ansible", "-i", "inv", "--output", "json"])
    assert res.exit_code == 0, res.output
    assert not mine[0].exists()
