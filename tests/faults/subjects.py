"""The runbooks of the matrix as Subjects (tests/faults/harness.py): deploy-4gb on this machine and
over SSH, set up on the session's real dockerd, PostgreSQL and Redis (tests/deploy/helpers.py's deploy,
with an inventory host name of the matrix's own, so that its deploy lock is its own too)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from runbook.execute.lock import lock_dir
from tests.deploy.helpers import V1_MIGRATIONS, V2_MIGRATIONS, Deploy, make_deploy, migrations_dir
from tests.faults.harness import REPO, Subject, differences, file_digest
from tests.fixtures.health import health


def deploy_4gb_state(d: Deploy, runbook: str = "deploy-4gb") -> dict[str, Any]:
    """Deploy.state() (health, the api containers' image IDs, compose file and .env, schema, indexes,
    applied migrations, rows) with file digests and modes, and whether the host's deploy lock is free."""
    st = d.state()
    app = d.app_dir
    st["files"] = {p.name: file_digest(p) for p in (app / "docker-compose-4gb.yml", app / "app.env")}
    st["lock_held"] = Path(lock_dir(runbook, d.host)).exists()
    st["containers"] = _containers(d.vars["app_name"])
    return st


def _containers(project: str) -> dict[str, str]:
    """service -> image ID of every running container of the compose project."""
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not ids:
        return {}
    out = subprocess.run(
        ["docker", "inspect", "-f", '{{index .Config.Labels "com.docker.compose.service"}} {{.Image}}', *ids],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(sorted(line.split() for line in out.splitlines() if line.strip()))


def fresh_inventory(root: Path, hosts_line: str) -> Path:
    inv = root / "inventory"
    (inv / "group_vars").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "inventories/local/group_vars/all.yml", inv / "group_vars/all.yml")
    (inv / "hosts").write_text(f"[app]\n{hosts_line}\n")
    return inv


class Deploy4gb:
    """deploy-4gb from v1 (migrations 001-002, two conversations) to v2 (003 too)."""

    def __init__(self, root: Path, postgres_server: Any, redis_server: Any, host: str, hosts_line: str,
                 cli_args: list[str] | None = None, extra_vars: dict[str, Any] | None = None):  # fmt: skip
        self.pg = postgres_server
        inv = fresh_inventory(root, hosts_line)
        self.d = make_deploy(root, postgres_server, redis_server, inventory=inv, host=host,
                             cli_args=list(cli_args or []))  # fmt: skip
        self.d.vars.update({"settle_seconds": 0.5, "health_delay": 0.3, "container_health_interval": "500ms"})
        self.d.vars.update(extra_vars or {})
        self.subject = Subject(
            runbook="deploy-4gb",
            root=root,
            inventory=inv,
            host=host,
            vars=self.d.vars,
            change={"app_version": "v2", "migrations_dir": migrations_dir(root, "m-v2", V2_MIGRATIONS)},
            state=lambda: deploy_4gb_state(self.d),
            healthy=lambda expected: health(self.d.port) == expected["health"],
            cli_args=self.d.cli_args,
            audit_dir=root / "audit",
        )
        self.baseline: dict[str, Any] = {}

    def rebuild(self) -> dict[str, Any]:
        """The v1 baseline from nothing: stack down, database dropped and made again, app dir gone, v1
        deployed, the two conversations inserted. Used once, and after a point left a mess behind."""
        d = self.d
        d.down()
        db = d.vars["db_name"]
        with psycopg.connect(self.pg.dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {db}")
        shutil.rmtree(d.app_dir, ignore_errors=True)
        shutil.rmtree(Path(lock_dir("deploy-4gb", d.host)), ignore_errors=True)
        d.vars["migrations_dir"] = migrations_dir(d.root, "m-v1", V1_MIGRATIONS)
        res = self.subject.cli("exec")
        assert res.rc == 0, f"the v1 baseline did not deploy: {res.message}"
        d.sql(
            "INSERT INTO conversations (user_id) VALUES ('alice'), ('bob');"
            "INSERT INTO messages (conversation_id, role, content) VALUES "
            "(1, 'user', 'How big is a 4 GB host?'), (2, 'user', 'Roll it back!')"
        )
        state = self.subject.state()
        assert state["health"] and state["health"]["version"] == "v1", state["health"]
        return state

    def releases(self) -> int:
        """How many releases compose.up keeps for the stack (it keeps 5, and prunes the older ones)."""
        store = self.d.app_dir / ".runbook-releases" / self.d.vars["app_name"]
        return len([p for p in store.iterdir() if p.is_dir()]) if store.is_dir() else 0

    def ensure_baseline(self, fresh_release: bool = False) -> dict[str, Any]:
        """The host exactly at the baseline (rebuilt when a point before left it elsewhere). With
        ``fresh_release``, also rebuilt when the next point's releases (a killed run's and a resumed
        one's) could push the baseline's out of the 5 kept: each point is tried on its own; what
        many failed deploys in a row do to the release store is a row of its own in the matrix
        (test_disk_matrix.py's ten failed attempts)."""
        if not self.baseline:
            self.baseline = self.rebuild()
            return self.baseline
        found = self.subject.state()
        if differences(self.baseline, found) or (fresh_release and self.releases() >= 4):
            again = self.rebuild()
            assert not differences(self.baseline, again), differences(self.baseline, again)
        return self.baseline

    def down(self) -> None:
        self.d.down()
