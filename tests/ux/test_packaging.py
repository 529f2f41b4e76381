"""Packaging: the wheel is a tool that works outside the repository. `runbook init` lays out a
project from the examples shipped as package data; psycopg and redis are extras, and a module that
needs a missing one fails as a step, naming the extra."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from runbook.cli.examples import PATTERNS, example_files
from tests.core.conftest import REPO, Project

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_package_list_names_every_package_and_the_examples() -> None:
    from setuptools import find_packages

    listed = PYPROJECT["tool"]["setuptools"]["packages"]
    code = sorted(find_packages(str(REPO), include=["runbook*"]))
    assert sorted(p for p in listed if not p.startswith("runbook.examples")) == code
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert {v: k for k, v in mapped.items()} == {
        d: f"runbook.examples.{d.replace('/', '.')}" for d in PATTERNS
    }
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    examples = {k: v for k, v in data.items() if k.startswith("runbook.examples")}
    assert {mapped[k]: tuple(v) for k, v in examples.items()} == PATTERNS  # one rule, two spellings
    # the Ansible collection ships whole inside its package (runbook ansible-collection path)
    assert data["runbook.ansible_collection"] == ["ansible_collections/**/*"]


def test_psycopg_and_redis_are_extras() -> None:
    deps = " ".join(PYPROJECT["project"]["dependencies"])
    assert "psycopg" not in deps and "redis" not in deps
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any("psycopg" in d for d in extras["postgres"]) and any(
        d.startswith("redis") for d in extras["redis"]
    )
    assert "postgres" in extras["all"][0] and "redis" in extras["all"][0]
    assert any("postgres" in d and "redis" in d for d in extras["dev"])  # the tests need both


def test_the_shipped_examples_never_include_generated_secrets(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for rel in ("playbooks/a.yml", "inventories/local/hosts", "inventories/local/group_vars/all.yml",
                "inventories/local/host_vars/localhost/generated.yml", "templates/x/y.j2", "migrations/001_a.sql"):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x: 1\n")
    assert [rel for rel, _ in example_files(root)] == [
        "playbooks/a.yml", "templates/x/y.j2", "inventories/local/group_vars/all.yml", "inventories/local/hosts",
        "migrations/001_a.sql",
    ]  # fmt: skip


def test_init_lays_out_a_project_ready_to_run(project: Project, tmp_path: Path) -> None:
    res = project.cli("init", "proj")
    assert res.exit_code == 0, res.output
    proj = project.root / "proj"
    for d in ("playbooks", "templates", "inventories/local", "migrations"):
        assert (proj / d).is_dir(), d
    assert (proj / "playbooks" / "local-smoke.yml").read_bytes() == (
        REPO / "playbooks" / "local-smoke.yml"
    ).read_bytes()
    assert not (proj / "inventories" / "local" / "host_vars").exists()
    assert "next: cd proj && runbook validate && runbook exec local-smoke" in res.stdout
    os.chdir(proj)
    assert project.cli("validate").exit_code == 0
    smoke = ["-e", f"smoke_port={free_port()}", "-e", f"smoke_dir={tmp_path / 'smoke'}"]
    res = project.cli("exec", "local-smoke", *smoke)
    assert res.exit_code == 0, res.output


def test_init_keeps_what_is_there_and_refuses_a_file(project: Project) -> None:
    (project.root / "playbooks" / "local-smoke.yml").write_text("# mine\n")
    res = project.cli("init")
    assert res.exit_code == 0 and "1 existing kept" in res.stdout
    assert (project.root / "playbooks" / "local-smoke.yml").read_text() == "# mine\n"
    assert project.cli("init").stdout.startswith(".: 0 file(s) created")
    (project.root / "afile").write_text("")
    res = project.cli("init", "afile")
    assert res.exit_code == 2 and "Traceback" not in res.output


# ------------------------------------------------------------------ the real wheel, in a fresh venv
def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _wheel(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The wheel built from a copy of the checkout, and the environment to install and run it in."""
    src = tmp_path / "src"  # a copy: the build's own build/ and egg-info never land in the checkout
    top = {".git", ".runbook", "audit", "build", "dist", "tests", "bench", ".venv"}
    anywhere = shutil.ignore_patterns(
        "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "generated.yml"
    )

    def ignore(directory: str, names: list[str]) -> set[str]:
        return set(anywhere(directory, names)) | (top & set(names) if Path(directory) == REPO else set())

    shutil.copytree(REPO, src, ignore=ignore)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", RUNBOOK_AUDIT="0", NO_COLOR="1")
    dist = tmp_path / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), "."], src, env)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("runbook-*.whl")
    return wheel, env


@pytest.mark.slow
def test_pipx_installs_the_wheel_as_a_tool(tmp_path: Path) -> None:
    """As an operator installs it: `pipx install runbook-….whl`, its own venv, `runbook` on PATH."""
    wheel, env = _wheel(tmp_path)
    env.update(
        PIPX_HOME=str(tmp_path / "pipx"),
        PIPX_BIN_DIR=str(tmp_path / "bin"),
        PIPX_MAN_DIR=str(tmp_path / "man"),
    )
    inst = _run([sys.executable, "-m", "pipx", "install", str(wheel)], tmp_path, env)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    runbook = str(tmp_path / "bin" / "runbook")
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert _run([runbook, "init", "ops"], work, env).returncode == 0
    val = _run([runbook, "validate"], work / "ops", env)
    assert val.returncode == 0, val.stdout + val.stderr
    listed = _run([sys.executable, "-m", "pipx", "list", "--short"], tmp_path, env)
    assert listed.stdout.startswith("runbook "), listed.stdout


@pytest.mark.slow
def test_the_built_wheel_works_outside_the_repository(tmp_path: Path) -> None:
    wheel, env = _wheel(tmp_path)
    venv.create(tmp_path / "venv", with_pip=True, system_site_packages=False)
    py = str(tmp_path / "venv" / "bin" / "python")
    inst = _run([py, "-m", "pip", "install", "-q", str(wheel)], tmp_path, env)
    assert inst.returncode == 0, inst.stderr
    runbook = str(tmp_path / "venv" / "bin" / "runbook")
    # installed, the step kinds come from the wheel's entry points, and runbook.testing ships with it
    probe = "from runbook.kinds import base, builtin_families; import runbook.testing; print(len(builtin_families()), len(base.registry()))"
    found = _run([py, "-c", probe], tmp_path, env)
    assert found.returncode == 0, found.stderr
    families = PYPROJECT["project"]["entry-points"]["runbook.steps"]
    from runbook.kinds import base

    assert found.stdout.split() == [str(len(families)), str(len(base.registry()))]
    work = tmp_path / "elsewhere"
    work.mkdir()

    assert _run([runbook, "init", "ops"], work, env).returncode == 0
    ops = work / "ops"
    val = _run([runbook, "validate"], ops, env)
    assert val.returncode == 0, val.stdout + val.stderr
    smoke = _run([runbook, "exec", "local-smoke", "-e", f"smoke_port={free_port()}", "-e", f"smoke_dir={tmp_path / 'smoke'}"], ops, env)  # fmt: skip
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "\x1b" not in smoke.stdout
    doc = _run([runbook, "doc", "postgres.backup"], ops, env)
    assert doc.returncode == 0 and "EXAMPLE (from playbooks/" in doc.stdout, doc.stdout + doc.stderr

    # no extras installed: a module that needs one fails as a step and names it
    (ops / "playbooks" / "db.yml").write_text(
        "hosts: localhost\nsteps:\n"
        "  - {name: count, postgres.query: {dsn: 'postgresql://u@127.0.0.1:9/x', sql: 'select 1'}}\n"
    )
    (ops / "playbooks" / "cache.yml").write_text(
        "hosts: localhost\nsteps:\n  - {name: ping, redis.ping: {url: 'redis://127.0.0.1:9/0'}}\n"
    )
    for book, extra in (("db", "postgres"), ("cache", "redis")):
        res = _run([runbook, "exec", book, "--output", "json"], ops, env)
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"pip install 'runbook[{extra}]'" in res.stdout and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "library, extra, step",
    [
        ("psycopg", "postgres", "postgres.query: {dsn: 'postgresql://u@127.0.0.1:9/x', sql: 'select 1'}"),
        ("redis", "redis", "redis.ping: {url: 'redis://127.0.0.1:9/0'}"),
    ],
)
def test_a_missing_extra_is_a_step_failure_naming_it(
    project: Project, monkeypatch: pytest.MonkeyPatch, library: str, extra: str, step: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # what `import` meets when it is not installed
    project.runbook("needs", f"hosts: localhost\nsteps:\n  - name: needs {extra}\n    {step}\n")
    res, doc = project.exec_json("needs")
    assert res.exit_code == 1
    msg = project.steps(doc)[f"needs {extra}"]["msg"]
    assert f"needs the Python package {library}" in msg and f"pip install 'runbook[{extra}]'" in msg


def test_the_audit_sink_without_psycopg_names_the_extra(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    project.runbook("tiny", "hosts: localhost\nsteps:\n  - {name: hi, shell: 'true'}\n")
    res = project.exec("tiny", "--audit-dsn", "postgresql://u@127.0.0.1:9/x")
    assert res.exit_code == 2 and "runbook[postgres]" in res.output and "Traceback" not in res.output


def test_init_into_a_directory_with_a_space_says_how_to_get_there(project: Project) -> None:
    res = project.cli("init", "my ops")
    assert res.exit_code == 0 and "next: cd 'my ops' && runbook validate" in res.stdout
    assert (project.root / "my ops" / "playbooks" / "local-smoke.yml").is_file()
