"""A third-party step-kind package, built and installed for real (pip, no network), is found through
its ``runbook.steps`` entry point by the real CLI in a fresh process: its kinds run, register, are
rolled back from their snapshots, show in `runbook doc` and `plan`, and a misspelt one is suggested.
The package is tests/fixtures/acme_plugin, the worked example of docs/step-kinds.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "tests" / "fixtures" / "acme_plugin"

RUNBOOK = """\
hosts: localhost
preflight:
  - name: up long enough
    acme.uptime: {min_seconds: 0}
    register: up
steps:
  - name: set the motd
    acme.motd: {text: "deploying {{ version }}", path: "{{ motd }}"}
    register: motd_result
  - name: report
    debug: {msg: "up {{ up.seconds | int }}s, wrote {{ motd_result.path }}"}
  - name: the deploy
    shell: "{{ deploy_cmd }}"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed into a directory of its own (a copy is built: the build's
    egg-info and build/ never land in the checkout)."""
    root = tmp_path_factory.mktemp("acme")
    src, target = root / "src", root / "site"
    shutil.copytree(PLUGIN, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         "--disable-pip-version-check", "--target", str(target), str(src)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("acme_runbook-*.dist-info/entry_points.txt")), list(target.iterdir())
    return target


def _runbook(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{site}", RUNBOOK_AUDIT="0", NO_COLOR="1", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "runbook", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "motd.yml").write_text(RUNBOOK)
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")
    return tmp_path


@pytest.mark.slow
def test_an_installed_packages_kinds_run_register_and_roll_back(site: Path, proj: Path) -> None:
    motd = proj / "motd"
    motd.write_text("welcome\n")
    common = ["-i", "inv", "-e", f"motd={motd}", "-e", "version=v2", "--output", "json"]

    failed = _runbook(site, proj, "exec", "motd", *common, "-e", "deploy_cmd=false")
    assert failed.returncode == 1, failed.stdout + failed.stderr  # a step failed, rolled back
    assert motd.read_text() == "welcome\n"  # acme.motd's undo put the old message back
    doc = json.loads(failed.stdout)
    steps = {s["name"]: s for s in doc["hosts"]["localhost"]["steps"]}
    assert steps["set the motd"]["outcome"] == "changed"
    report = steps["report"]["msg"]  # what acme.uptime and acme.motd registered
    assert report.startswith("up ") and report.endswith(f"s, wrote {motd}"), report
    assert int(report.split()[1].rstrip("s,")) > 0

    ok = _runbook(site, proj, "exec", "motd", *common, "-e", "deploy_cmd=true")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert motd.read_text() == "deploying v2\n"


@pytest.mark.slow
def test_a_dry_run_plans_the_write_and_changes_nothing(site: Path, proj: Path) -> None:
    motd = proj / "motd"
    motd.write_text("welcome\n")
    res = _runbook(site, proj, "plan", "motd", "-i", "inv", "-e", f"motd={motd}", "-e", "version=v3",
                   "-e", "deploy_cmd=true")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert str(motd) in res.stdout and "+deploying v3" in res.stdout
    assert motd.read_text() == "welcome\n"


@pytest.mark.slow
def test_doc_lists_the_kind_and_a_misspelt_one_is_suggested(site: Path, proj: Path) -> None:
    doc = _runbook(site, proj, "doc", "acme.motd")
    assert doc.returncode == 0, doc.stdout + doc.stderr
    assert "Set the message of the day" in doc.stdout and "sha256" in doc.stdout
    (proj / "playbooks" / "typo.yml").write_text("hosts: localhost\nsteps:\n  - acme.mtod: hi\n")
    bad = _runbook(site, proj, "validate", "typo", "-i", "inv")
    assert bad.returncode == 2
    assert "unknown module 'acme.mtod'" in bad.stdout + bad.stderr
    assert "acme.motd" in bad.stdout + bad.stderr  # did you mean ...


def test_the_worked_example_in_the_docs_is_this_package() -> None:
    doc = (REPO / "docs" / "step-kinds.md").read_text()
    blocks = re.findall(r"```(?:toml|python)\n(.*?)```", doc, re.S)
    for rel in ("pyproject.toml", "acme_runbook/steps.py", "tests/test_acme_steps.py"):
        assert (PLUGIN / rel).read_text() in blocks, f"docs/step-kinds.md does not show {rel} as it is"


def test_the_docs_snippets_run() -> None:
    doc = (REPO / "docs" / "step-kinds.md").read_text()
    snippet = doc.split("Scripted commands and service clients", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile("from runbook.testing import FakeHost, run\n" + snippet, "docs/step-kinds.md", "exec"), {})


def test_without_the_package_the_kind_is_unknown(proj: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), RUNBOOK_AUDIT="0", NO_COLOR="1")
    res = subprocess.run(
        [sys.executable, "-m", "runbook", "validate", "motd", "-i", "inv"], cwd=proj, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert res.returncode == 2 and "unknown module 'acme.uptime'" in res.stdout + res.stderr
