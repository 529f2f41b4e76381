"""A secret canary for every secret origin, through every command and every artefact.

One unique random value per origin (tests/security/canary.py: inline !vault, vault-encrypted whole
group_vars / host_vars / vars_files / -e @file, values derived from them by templating, the runbook's
``secrets:``, ``--secret NAME``, URL userinfo, Authorization / Cookie / X-API-Key / *-Token headers
echoed back by a real HTTP server, a DSN password, *PASSWORD* / *TOKEN* names) goes through exec
(-v, --output json, --output junit, --junit-file), plan (text and JSON), validate, a failing step whose
error messages hold every value, the automatic rollback and ``runbook rollback``; then every artefact
is searched: console stdout/stderr, JSON, JUnit files, the audit directory, the state directory, the
temp directory, and the command line of every process while a step that uses them all runs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.canary import (
    CanaryProject,
    echo_server,
    files_text,
    leaks,
    make_project,
    new_canaries,
    watch_command_lines,
)

pytest.importorskip("ansible", reason="ansible-core not installed")

USED = ("inline_vault", "vault_group_vars", "vault_group_vars_nested", "vault_host_vars", "vault_vars_file",
        "vault_extra_file", "runbook_secrets", "cli_secret", "dsn_password", "name_password", "name_token")  # fmt: skip


@pytest.fixture
def canary_project(tmp_path: Path) -> Iterator[tuple[CanaryProject, list[dict[str, str]]]]:
    with echo_server() as (port, seen):
        yield make_project(tmp_path / "project", new_canaries(), port), seen


def console(res: subprocess.CompletedProcess | tuple[str, str]) -> str:
    out, err = (res.stdout, res.stderr) if isinstance(res, subprocess.CompletedProcess) else res
    return f"{out}\n{err}"


def saved(p: CanaryProject) -> dict[str, str]:
    """Every file the runs left: audit, state, JUnit files, temp files."""
    return files_text(p.root / "audit", p.root / ".runbook", p.root / "out", p.tmpdir)


def test_no_secret_of_any_origin_reaches_any_artefact(canary_project, tmp_path: Path) -> None:
    p, seen = canary_project
    c = p.canary
    artefacts: dict[str, str] = {}
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir()
    t2.mkdir()

    # exec -v (text), while the step that uses every secret runs: nothing on any command line
    proc = p.start("exec", "canary", "-v", "-e", f"t={t1}", "-e", "linger=2.5",
                   "--junit-file", str(p.root / "out" / "exec.xml"))  # fmt: skip
    running, on_command_lines = watch_command_lines(proc, c, "sleep 2.5")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert running, "the step that uses every secret was never seen running"
    assert on_command_lines == []
    artefacts["exec -v console"] = console((out, err))

    # the secrets were really used: the config holds every value, the server got every credential
    conf = (t1 / "app.conf").read_text()
    for origin in USED:
        assert c[origin] in conf, origin
    assert c["derived_url"] in conf and c["derived_filter"] in conf
    login, api = seen[0], seen[1]
    assert login["Authorization"] == "Basic " + c["url_userinfo_basic"]
    assert "@" not in login["Host"] and c["url_userinfo"] not in login["Host"]
    assert api["Authorization"] == f"Bearer {c['header_authorization']}"
    assert api["Cookie"] == f"session={c['header_cookie']}"
    assert api["X-API-Key"] == c["header_api_key"] and api["X-Deploy-Token"] == c["header_token"]

    # exec --output json, failing: the failed step's messages hold every secret; rollback runs
    # (over the first run's config: its snapshot holds every secret, so it is not copied into the
    # run state but kept on the host, and restored from there)
    res = p.run("exec", "canary", "--output", "json", "-e", f"t={t1}", "-e", "fail=true",
                "--junit-file", str(p.root / "out" / "failed.xml"))  # fmt: skip
    assert res.returncode == 1, console(res)
    doc = json.loads(res.stdout)
    assert doc["status"] == "rolled_back" and doc["hosts"][p.host]["rollback"] is not None
    assert (t1 / "app.conf").read_text() == conf  # rolled back to what the first run wrote
    artefacts["exec --output json"] = console(res)

    # exec --output junit on stdout
    res = p.run("exec", "canary", "--output", "junit", "-e", f"t={t2}")
    assert res.returncode == 0, console(res)
    assert "<testsuite" in res.stdout
    artefacts["exec --output junit"] = console(res)

    # plan, text and JSON (the no_log step's command is not shown either)
    res = p.run("plan", "canary", "-v", "-e", f"t={tmp_path / 'new'}")
    assert res.returncode == 0, console(res)
    assert "Write the config" in res.stdout
    artefacts["plan"] = console(res)
    res = p.run("plan", "canary", "--output", "json", "-e", f"t={tmp_path / 'new'}")
    assert res.returncode == 0, console(res)
    plan = json.loads(res.stdout)
    private = [s for s in plan["hosts"][p.host]["steps"] if s["name"] == "A private step"]
    assert private and all("echo private" not in json.dumps(s) for s in private)
    artefacts["plan --output json"] = console(res)

    # validate: every secret in a problem's message ("invalid version number '...'")
    res = p.run("validate", "judge")
    assert res.returncode == 2, console(res)
    assert res.stderr.count("invalid version number") >= 12, res.stderr
    artefacts["validate"] = console(res)

    # runbook rollback of the first run (its secret -e values are given again, as they must be)
    first = sorted((p.root / ".runbook" / "runs").iterdir())[0].name
    res = p.run("rollback", "canary", "--run", first, "--yes")
    assert res.returncode == 0, console(res)
    assert not (t1 / "app.conf").exists()
    artefacts["rollback"] = console(res)

    artefacts |= saved(p)
    assert any("/audit/" in k for k in artefacts) and any("/.runbook/" in k for k in artefacts)
    assert leaks(c, artefacts) == []
