"""deploy-4gb over the SSH transport: the same runbook against a host reached through a real sshd
(tests/fixtures/sshd.py, a loopback address of this machine), with the same dockerd, PostgreSQL and
Redis seen from that host. PostgreSQL, Redis and the health URL are reached through SSH tunnels;
docker, pg_dump and the file writes run on the far side of the connection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import REPO
from tests.deploy.helpers import (
    V2_MIGRATIONS,
    Deploy,
    ensure_baseline,
    health,
    inject,
    make_deploy,
    migrations_dir,
)

pytestmark = [pytest.mark.slow, pytest.mark.ssh, pytest.mark.docker, pytest.mark.postgres]

PLUGIN_DIRS = (
    "~/.docker/cli-plugins",
    "/usr/local/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


@pytest.fixture(scope="module")
def deploy(dockerd, postgres_server, redis_server, ssh_lab, tmp_path_factory) -> Deploy:
    if not any((Path(d).expanduser() / "docker-compose").exists() for d in PLUGIN_DIRS):
        pytest.skip("the login user's docker has no compose plugin (run scripts/install-compose-plugin.sh)")
    root = tmp_path_factory.mktemp("deploy4gb-ssh")
    host = ssh_lab.hosts[0]
    inv = root / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    shutil.copy(REPO / "inventories/local/group_vars/all.yml", inv / "group_vars/all.yml")
    (inv / "hosts").write_text(
        f"[app]\n{host.name} ansible_host={host.address} ansible_port={host.port} ansible_user=root "
        f"ansible_ssh_private_key_file={ssh_lab.key}\n"
    )
    d = make_deploy(
        root,
        postgres_server,
        redis_server,
        inventory=inv,
        host=host.name,
        cli_args=["--known-hosts", str(ssh_lab.known_hosts)],
    )
    d.vars["docker_host"] = dockerd.host  # the login shell on the far side does not have DOCKER_HOST
    yield d
    d.down()


@pytest.fixture
def baseline(deploy: Deploy) -> dict[str, Any]:
    return ensure_baseline(deploy)


def test_failed_deploy_over_ssh_rolls_back(deploy: Deploy, baseline: dict) -> None:
    doc = inject(deploy, baseline, "over SSH: container exits at start", app_image="runbook-demo:broken",
                 migrations_dir=migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS))  # fmt: skip
    assert "Deploy the stack" in doc["message"]


def test_plan_over_ssh_shows_the_compose_diff(deploy: Deploy, baseline: dict) -> None:
    rc, doc = deploy.cli("plan", overrides={"app_version": "v2"})
    assert rc == 0, doc["message"]
    planned = [p for s in doc["hosts"][deploy.host]["steps"] for p in s.get("planned") or []]
    diff = "\n".join(p.get("diff", "") for p in planned)
    assert "-    image: runbook-demo:v1" in diff and "+    image: runbook-demo:v2" in diff
    assert deploy.state() == baseline
    assert all(secret not in json.dumps(doc) for secret in deploy.secrets)


def test_deploy_v2_over_ssh(deploy: Deploy, baseline: dict) -> None:
    rc, doc = deploy.cli("exec", overrides={"app_version": "v2",
                                            "migrations_dir": migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS)})  # fmt: skip
    assert rc == 0, doc["message"]
    assert health(deploy.port)["version"] == "v2"
    assert [v for (v,) in deploy.sql("SELECT version FROM schema_migrations ORDER BY 1")] == [
        "001",
        "002",
        "003",
    ]
    # a finished run rolled back later, over the same verified connection (--known-hosts)
    rc, back = deploy.cli("rollback", "--run", doc["run_id"])
    assert rc == 0, back.get("message")
    assert health(deploy.port)["version"] == "v1"
    assert deploy.state() == baseline
