"""Fixtures for runbook on Ansible's engine: real ansible-playbook runs with the shipped collection."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook.ansible_collection import collections_path
from tests.fixtures.sshd import SshLab, ssh_lab  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ansible:
    dir: Path
    env: dict[str, str]

    def playbook(
        self, playbook: Path, inventory: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess:
        res = subprocess.run(
            ["ansible-playbook", "-i", inventory, str(playbook), *extra],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check:
            assert res.returncode == 0, res.stdout + res.stderr
        return res


@pytest.fixture
def ansible(tmp_path: Path) -> Callable[..., Ansible]:
    """``ansible(collections=path, **env) -> Ansible``: an environment for ansible-playbook in tmp_path
    (its own ANSIBLE_HOME and temp dirs), with the shipped collection on the collections path."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-core not installed")

    def make(collections: Path | None = None, **env: str) -> Ansible:
        home = tmp_path / "ansible-home"
        home.mkdir(exist_ok=True)
        e = dict(os.environ)
        e.update(
            {
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
                "ANSIBLE_HOME": str(home),
                "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
                "ANSIBLE_COLLECTIONS_PATH": str(collections or collections_path()),
                "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "false",
                "ANSIBLE_PYTHON_INTERPRETER": sys.executable,  # modules run with this Python
            }
        )
        e.update(env)
        return Ansible(tmp_path, e)

    return make
