"""Shared helpers for the inventory tests: the ansible-core oracle, run in a clean environment.

The oracle is the real `ansible-inventory` / `ansible` CLI (ansible-core 2.19), run with HOME in a
temporary directory and every ANSIBLE_* variable removed, from inside the inventory's directory.
Nothing is cached between test runs; within a run the oracle calls of one test module are started
together on a small thread pool so they overlap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: the inventory tests compare against ansible-core 2.19 "
            "(pip install 'ansible-core>=2.19,<2.20'); they must not be skipped.",
            pytrace=False,
        )
    return path


class Oracle:
    """Runs ansible CLIs in a clean environment; `submit` returns a Future of CompletedProcess."""

    def __init__(self, home: str):
        self.home = home
        self.pool = ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2)))

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ANSIBLE_") and not k.startswith("RUNBOOK_")
        }
        env["HOME"] = self.home
        env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "False"
        env.update(extra or {})
        return env

    def submit(self, argv: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> Future:
        require_tool(argv[0])
        return self.pool.submit(
            subprocess.run,
            argv,
            cwd=cwd,
            env=self.env(extra_env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def inventory_list(self, cwd: Path, args: Iterable[str], extra: Iterable[str] = ()) -> Future:
        argv = ["ansible-inventory", "--list"]
        for a in args:
            argv += ["-i", a]
        return self.submit([*argv, *extra], cwd)


@pytest.fixture(scope="session")
def oracle() -> Iterable[Oracle]:
    require_tool("ansible-inventory")
    home = tempfile.mkdtemp(prefix="runbook-oracle-home-")
    orc = Oracle(home)
    yield orc
    orc.pool.shutdown(wait=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def in_dir(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Change the working directory for one test (restored afterwards)."""

    def change(path: Path) -> None:
        monkeypatch.chdir(path)

    return change
