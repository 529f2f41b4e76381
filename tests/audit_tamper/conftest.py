"""A real signed audit trail, written by `runbook exec` on the local transport, for the tamper tests.

The trail is made once per session (two runs of a small runbook, signed with a key from `runbook
audit keygen`); every test gets its own copy in ``tmp_path`` to mutate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.audit.conftest import _isolated_config  # noqa: F401 - the same autouse fixture
from tests.fixtures.postgres import postgres_server  # noqa: F401 - session fixture (cross-check tests)

ROOT = Path(__file__).resolve().parents[2]

RUNBOOK = """\
name: tiny
hosts: localhost
vars:
  greeting: "héllo \\"wörld\\" ☃"
steps:
  - name: Say hello
    shell: "echo {{ greeting | quote }}"
  - name: Tab and newline
    shell: "printf 'x\\\\ty\\\\n'"
    changed_when: false
"""


@dataclass(frozen=True)
class Pristine:
    audit: Path
    signers: Path  # allowed signers trusting the key that signed the trail
    key: Path
    other_key: Path  # a key nobody trusts
    project: Path


def _cli(cwd: Path, env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runbook.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(home / "xdg"),
               XDG_STATE_HOME=str(home / "state"), NO_COLOR="1")  # fmt: skip
    return env


def exec_run(project: Path, audit: Path, key: Path | None, *extra: str) -> None:
    """One run of the tiny runbook into ``audit``, signed with ``key`` (None: unsigned, no key exists);
    ``extra``: more `runbook exec` options (``--audit-dsn DSN``)."""
    signing = ["--audit-key", str(key)] if key is not None else []
    _cli(project, cli_env(project), "exec", "tiny", "-i", "inv.ini", "--audit-dir", str(audit),
         *signing, *extra, "--yes")  # fmt: skip


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    project = tmp_path_factory.mktemp("tamper-project")
    (project / "playbooks").mkdir()
    (project / "playbooks" / "tiny.yml").write_text(RUNBOOK, encoding="utf-8")
    (project / "inv.ini").write_text("localhost ansible_connection=local\n")
    env = cli_env(project)
    key, other = project / "keys" / "ops_ed25519", project / "keys" / "mallory_ed25519"
    _cli(project, env, "audit", "keygen", "--out", str(key), "--comment", "ops@example.com")
    _cli(project, env, "audit", "keygen", "--out", str(other), "--comment", "mallory@example.com")
    audit = project / "audit"
    for _ in range(3):
        exec_run(project, audit, key)
    signers = project / "allowed_signers"
    signers.write_text("ops@example.com " + Path(f"{key}.pub").read_text())
    return Pristine(audit, signers, key, other, project)


@pytest.fixture(scope="session")
def pristine_mixed(pristine: Pristine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose chain starts unsigned (before the operator made a key), then goes on signed."""
    audit = tmp_path_factory.mktemp("tamper-mixed") / "audit"
    exec_run(pristine.project, audit, None)
    exec_run(pristine.project, audit, pristine.key)
    return audit


@pytest.fixture
def mixed(pristine_mixed: Path, tmp_path: Path) -> Path:
    """A fresh copy of ``pristine_mixed`` (unsigned run, then signed run)."""
    d = tmp_path / "mixed"
    shutil.copytree(pristine_mixed, d)
    return d


@pytest.fixture
def trail(pristine: Pristine, tmp_path: Path) -> Path:
    """A fresh copy of the pristine audit directory (three signed runs) to tamper with."""
    d = tmp_path / "audit"
    shutil.copytree(pristine.audit, d)
    return d
