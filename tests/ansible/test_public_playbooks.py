"""The three public playbooks of issue 10 load, validate and plan (`runbook validate` / `runbook plan`)
as published or with the adaptations tests/fixtures/ansible-content/README.md lists; the published
ones that need an adaptation are refused with the runbook way to say it."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.core.conftest import REPO, Project

CONTENT = REPO / "tests" / "fixtures" / "ansible-content"


@pytest.fixture(autouse=True)
def _collections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(CONTENT / "collections"))


@pytest.fixture(autouse=True)
def _offline_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The playbooks' git repositories, served from local bare repositories (the plan runs Ansible's
    git module in check mode for real): git rewrites https://github.com/ to them, no network."""
    mirror = tmp_path_factory.mktemp("github")
    work = tmp_path_factory.mktemp("work")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "README").write_text("demo\n")
    subprocess.run(["git", "-C", str(work), "add", "README"], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "-m", "demo"], check=True, env={**os.environ, **env})
    for name in ("geerlingguy/demo-nodejs-api", "geerlingguy/demo-rails-app", "bennojoy/mywebapp"):
        bare = mirror / f"{name}.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    tools = tmp_path_factory.mktemp("bin")  # a crontab for the cron module's check (none installed here)
    (tools / "crontab").write_text("#!/bin/sh\n[ \"$1\" = -l ] && exit 0\ncat >/dev/null\n")
    (tools / "crontab").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    config = mirror / "gitconfig"
    config.write_text(f'[url "file://{mirror}/"]\n\tinsteadOf = https://github.com/\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))


# The plan runs Ansible's modules in check mode on this machine for real: a service the playbook
# restarts (nginx, httpd) is not installed here, and Ansible's service module says so. That is the
# one failure a plan of these playbooks may show on this machine (a handler, at the end).
NOT_HERE = "Could not find the requested service"


def _plan(project: Project, playbook: Path, inventory: Path) -> dict:
    res = project.cli("plan", str(playbook), "-i", str(inventory), "--output", "json")
    doc = json.loads(res.stdout)
    assert "hosts" in doc, res.output
    failed = [s for h in doc["hosts"].values() for s in h["steps"] if s["outcome"] == "failed"]
    assert res.exit_code == (1 if failed else 0), res.output
    assert all(NOT_HERE in s["msg"] for s in failed), failed
    return doc


def _changed_lines(a: Path, b: Path) -> list[str]:
    diff = difflib.unified_diff(a.read_text().splitlines(), b.read_text().splitlines(), lineterm="", n=0)
    return [d for d in diff if d[:1] in "+-" and not d.startswith(("+++", "---"))]


def test_deployments_rolling_loads_and_plans_as_published(project: Project) -> None:
    inv = project.inventory("[nodejs-api]\nlocalhost ansible_connection=local\n", name="nodejs")
    playbook = CONTENT / "deployments-rolling" / "playbooks" / "deploy.yml"
    res = project.cli("validate", str(playbook), "-i", str(inv))
    assert res.exit_code == 0, res.output
    doc = _plan(project, playbook, inv)
    steps = project.steps(doc)
    assert steps["Ensure Node.js API app is present."]["module"] == "git"  # an Ansible module
    assert steps["Ensure Node.js API app dependencies are present."]["outcome"] == "changed"
    tests_step = steps["Run Node.js API app tests."]
    assert "npm test" in tests_step["command"] and "chdir=" not in tests_step["command"]  # chdir= read out
    assert tests_step["command"].startswith("cd /opt/demo-nodejs-api && ")
    assert steps["restart forever apps"]["outcome"] == "changed"  # the handler, notified by the git step


def test_deployments_is_refused_for_its_role_then_plans_adapted(project: Project) -> None:
    inv = project.inventory("localhost ansible_connection=local\n", name="local")
    published = CONTENT / "deployments" / "playbooks" / "deploy.yml"
    res = project.cli("validate", str(published), "-i", str(inv))
    assert res.exit_code == 2
    assert "play key 'roles' is not supported" in res.output and "include_tasks: roles/NAME" in res.output
    adapted = CONTENT / "deployments" / "playbooks" / "deploy.adapted.yml"
    assert len(_changed_lines(published, adapted)) == 8  # 3 removed, 5 added (the role's handler)
    doc = _plan(project, adapted, inv)
    steps = project.steps(doc)
    assert steps["Ensure secrets file is present."]["outcome"] == "changed"  # runbook's own template
    assert steps["Check if database exists."]["outcome"] == "ok"  # Ansible's stat, run in check mode
    # `when: app_updated.changed == true`: what an Ansible module registers is known once it ran;
    # the plan shows the steps that depend on it (with_items, environment: as Ansible runs them)
    rake = steps["Perform deployment-related rake tasks."]
    assert rake["outcome"] == "changed", rake
    assert "RAILS_ENV=" in rake["command"] and "bundle exec rake db:migrate" in rake["command"]
    assert "bundle exec rake assets:precompile" in rake["command"]
    nginx = steps["restart nginx"]  # the handler, notified: checked by Ansible's service module
    assert nginx["outcome"] == "changed" or NOT_HERE in nginx["msg"], nginx


def test_lamp_haproxy_rolling_update_plans_adapted(project: Project, tmp_path: Path) -> None:
    inv_dir = tmp_path / "lamp"
    inv_dir.mkdir()
    shutil.copytree(CONTENT / "lamp_haproxy" / "group_vars", inv_dir / "group_vars")
    hosts = inv_dir / "hosts"
    hosts.write_text((CONTENT / "lamp_haproxy" / "hosts").read_text() + "\n[all:vars]\nansible_connection=local\n")
    published = CONTENT / "lamp_haproxy" / "rolling_update.yml"
    res = project.cli("validate", str(published), "-i", str(hosts))
    assert res.exit_code == 2 and "holds 2 plays" in res.output and "gathers none" in res.output
    adapted = CONTENT / "lamp_haproxy" / "rolling_update.adapted.yml"
    assert len(_changed_lines(published, adapted)) == 11  # 8 removed (a play, roles), 3 added
    doc = _plan(project, adapted, hosts)
    assert list(doc["hosts"]) == ["web1", "web2"]
    web1 = project.steps(doc, "web1")
    assert web1["disable the server in haproxy"]["outcome"] == "changed"
    assert web1["Copy the code from repository"]["module"] == "git"
    assert web1["wait for webserver to come up"]["module"] == "wait_for"
