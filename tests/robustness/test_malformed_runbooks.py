"""Every malformed runbook in the corpus is refused the same way by every command that reads it:
exit 2 (a user error), `error: FILE:LINE:COL: what is wrong` plus what to do, and never a traceback,
an internal error, a hang or a run that starts anyway."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from runbook.cli.main import cli
from tests.robustness.corpus import CASES, LAUGHS, Case

REPO = Path(__file__).resolve().parents[2]
INVENTORY = "localhost ansible_connection=local\n"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    monkeypatch.setenv("COLUMNS", "240")
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY", "RUNBOOK_AUDIT_DIR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "inv").write_text(INVENTORY)
    yield tmp_path


def write(root: Path, case: Case) -> Path:
    path = root / "playbooks" / f"{case.id}.yml"
    path.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode())
    for name, content in case.files.items():
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # an exception escaping the CLI is the bug this suite hunts
    return result


def assert_refused(result: Result, path: Path, case: Case) -> None:
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, out
    assert "Traceback" not in out and "internal error" not in out, out
    assert "error: " in out, out
    if case.where is not None:
        assert f"{path}:{case.where}:" in out, out
    assert case.says in out, out


def ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


STATIC = [c for c in CASES if c.static]
# Found before anything runs by exec as it is today: everything static, plus what exec checks itself.
EXEC = STATIC + [c for c in CASES if c.extra or c.id == "hosts-matches-nothing"]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_validate_refuses_it(root: Path, case: Case) -> None:
    path = write(root, case)
    assert_refused(run("validate", case.id, "-i", "inv", *case.extra), path, case)


@pytest.mark.parametrize("case", EXEC, ids=ids(EXEC))
def test_plan_refuses_it(root: Path, case: Case) -> None:
    path = write(root, case)
    assert_refused(run("plan", case.id, "-i", "inv", *case.extra), path, case)


@pytest.mark.parametrize("case", STATIC, ids=ids(STATIC))
def test_show_refuses_it(root: Path, case: Case) -> None:
    path = write(root, case)
    assert_refused(run("show", case.id), path, case)


@pytest.mark.parametrize("case", EXEC, ids=ids(EXEC))
def test_exec_refuses_it_before_starting_a_run(root: Path, case: Case) -> None:
    path = write(root, case)
    assert_refused(run("exec", case.id, "-i", "inv", "--yes", *case.extra), path, case)
    assert not (root / ".runbook").exists(), "a refused runbook must not start a run"


def test_every_error_of_a_file_is_reported_at_once(root: Path) -> None:
    case = Case(
        "many", "hosts: localhost\nserial: 0\nsteps:\n  - shel: x\n  - shell: y\n    retries: abc\n", None, ""
    )
    path = write(root, case)
    res = run("validate", "many", "-i", "inv")
    assert res.exit_code == 2
    for where in ("2:1", "4:5", "6:5"):
        assert f"{path}:{where}:" in res.output
    assert "3 problem(s) found" in res.output


def test_a_misspelt_runbook_name_gets_a_suggestion(root: Path) -> None:
    (root / "playbooks" / "deploy-app.yml").write_text("hosts: localhost\nsteps:\n  - shell: echo\n")
    for args in (
        ("validate", "deploy-ap"),
        ("show", "deploy-ap"),
        ("plan", "deploy-ap"),
        ("exec", "deploy-ap"),
    ):
        res = run(*args)
        assert res.exit_code == 2 and "no runbook named 'deploy-ap'" in res.output
        assert "did you mean 'deploy-app'?" in res.output


VALID = {
    "anchors-and-aliases": "hosts: localhost\nvars:\n  base: &b {x: 1}\n  other:\n    <<: *b\n    y: 2\n"
    "steps:\n  - &s\n    debug: {msg: '{{ other.x }}{{ other.y }}'}\n  - *s\n",
    "merge-keys-in-steps": "hosts: localhost\nx-retry: &retry {retries: 1, delay: 0}\n"
    "steps:\n  - <<: *retry\n    shell: echo hi\n",
    "merge-list": "hosts: localhost\nvars:\n  a: &a {x: 1}\n  b: &b {y: 2}\n  c:\n    <<: [*a, *b]\n"
    "steps:\n  - debug: {msg: '{{ c.x + c.y }}'}\n",
    "utf8-bom": "\ufeffhosts: localhost\nsteps:\n  - debug: {msg: café}\n",
    "templated-keywords": "hosts: localhost\nvars: {n: 2, t: 5, items: [a, b]}\nsteps:\n"
    "  - shell: echo {{ item }}\n    loop: '{{ items }}'\n    retries: '{{ n }}'\n    timeout: '{{ t }}'\n",
}


@pytest.mark.parametrize("name", list(VALID))
def test_valid_uses_of_yaml_features_still_work(root: Path, name: str) -> None:
    (root / "playbooks" / f"{name}.yml").write_text(VALID[name], encoding="utf-8")
    for args in (("validate", name, "-i", "inv"), ("show", name), ("exec", name, "-i", "inv", "--yes")):
        res = run(*args)
        assert res.exit_code == 0, res.output


def test_an_alias_bomb_is_refused_within_a_small_memory_budget(tmp_path: Path) -> None:
    """Expanded, this file is 10**9 values; with 300 MB of address space the CLI must still refuse it."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "inv").write_text(INVENTORY)
    body = "".join(f"  {line}\n" for line in LAUGHS.splitlines())
    (tmp_path / "playbooks" / "bomb.yml").write_text(
        f"hosts: localhost\nvars:\n{body}steps:\n  - debug: {{msg: '{{{{ i }}}}'}}\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (600 * 2**20, 600 * 2**20))

    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNBOOK_AUDIT": "0"}
    for cmd in ("validate", "plan", "exec"):
        res = subprocess.run(
            [sys.executable, "-m", "runbook.cli.main", cmd, "bomb", "-i", "inv", *(("--yes",) if cmd == "exec" else ())],
            cwd=tmp_path, env=env, capture_output=True, text=True, preexec_fn=limit, timeout=120,
        )  # fmt: skip
        assert res.returncode == 2, res.stderr
        assert "expands to more than" in res.stderr


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ('shell: echo {{ item }}\n    loop: "{{ 5 }}"', "loop must be a list, got int"),
        ('shell: echo hi\n    timeout: "{{ -0.5 }}"', "timeout must be greater than 0"),
        ('shell: echo hi\n    retries: "{{ -2 }}"', "retries must be at least 0"),
        ('shell: "echo ' + "x" * 3_000_000 + '"', "cannot start the command"),
    ],
    ids=[
        "loop-renders-to-an-int",
        "timeout-renders-negative",
        "retries-renders-negative",
        "command-too-long",
    ],
)
def test_values_only_known_at_run_time_fail_the_step_not_the_tool(
    root: Path, step: str, message: str
) -> None:
    (root / "playbooks" / "late.yml").write_text(f"hosts: localhost\nsteps:\n  - name: odd\n    {step}\n")
    result = run("exec", "late", "-i", "inv", "--yes", "--output", "json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    odd = next(s for s in doc["hosts"]["localhost"]["steps"] if s["name"] == "odd")
    assert odd["outcome"] == "failed" and message in (odd["msg"] + odd.get("stderr", "")), odd
