"""The collection runbook.core ships in the package, builds with ansible-galaxy and installs from the
artefact; the installed copy runs (not the one in place)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runbook.ansible_collection import collection_dir, collections_path
from runbook.cli.main import cli

pytestmark = pytest.mark.slow

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - runbook.core.step:
        kind: copy
        args: {{content: "from the artefact\\n", dest: "{dest}"}}
"""


def test_path_command_prints_the_collections_dir() -> None:
    res = CliRunner().invoke(cli, ["ansible-collection", "path"])
    assert res.exit_code == 0, res.output
    assert Path(res.output.strip()) == collections_path()
    assert (collections_path() / "ansible_collections" / "runbook" / "core" / "galaxy.yml").is_file()
    res = CliRunner().invoke(cli, ["ansible-collection", "path", "--collection"])
    galaxy = yaml.safe_load((Path(res.output.strip()) / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("runbook", "core")


def test_build_install_and_run_from_the_artefact(tmp_path: Path, ansible) -> None:
    out = tmp_path / "build"
    subprocess.run(
        ["ansible-galaxy", "collection", "build", str(collection_dir()), "--output-path", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (artefact,) = out.glob("runbook-core-*.tar.gz")
    installed = tmp_path / "installed"
    env = ansible(collections=installed).env  # the copy in place is not on the path: no "already installed"
    subprocess.run(
        ["ansible-galaxy", "collection", "install", str(artefact), "-p", str(installed)],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    root = installed / "ansible_collections" / "runbook" / "core"
    for rel in ("plugins/action/step.py", "plugins/callback/audit.py", "plugins/plugin_utils/transport.py"):
        assert (root / rel).is_file(), rel
    listed = subprocess.run(
        ["ansible-galaxy", "collection", "list", "-p", str(installed)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert "runbook.core" in listed.stdout

    dest = tmp_path / "marker.txt"
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK.format(dest=dest))
    run = ansible(collections=installed)
    res = run.playbook(pb, "localhost,", "-c", "local", "-v")
    assert dest.read_text() == "from the artefact\n"
    assert "changed=1" in res.stdout  # only the installed copy is on ANSIBLE_COLLECTIONS_PATH


def test_every_plugin_documents_itself_for_ansible_doc(ansible) -> None:
    env = ansible().env
    for kind, name in (
        ("module", "step"), ("module", "window"), ("module", "lock"), ("callback", "audit"), ("lookup", "run"),
    ):  # fmt: skip
        res = subprocess.run(
            ["ansible-doc", "-t", kind, f"runbook.core.{name}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert res.returncode == 0 and f"runbook.core.{name}" in res.stdout, res.stdout + res.stderr
        assert "ERROR" not in res.stderr, res.stderr
