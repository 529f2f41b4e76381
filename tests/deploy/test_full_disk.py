"""postgres.backup, postgres.migrate and compose.up when .runbook/ (run state and snapshots) fills
up mid-run, on a real 512 KB tmpfs, against real PostgreSQL and Docker: the step fails without
changing anything (no dump, no migration, the running release untouched), what changed before is
rolled back, the run ends with its JSON document and exit 5."""

from __future__ import annotations

import errno
import json
import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.core.conftest import Project
from tests.fixtures.disks import small_tmpfs
from tests.fixtures.health import health
from tests.fixtures.redis import free_port

pytestmark = [pytest.mark.slow]

FILL = '  - name: the state disk fills up\n    shell: "cat /dev/zero > {{ state_dir }}/filler 2>/dev/null; true"\n    undo: none\n'
BEFORE = '  - name: small\n    copy: {content: "v2\\n", dest: "{{ t }}/small.conf"}\n'


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY"):
        monkeypatch.delenv(var, raising=False)
    p = Project(tmp_path)
    p.inventory()
    return p


@pytest.fixture
def t(tmp_path: Path) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    (d / "small.conf").write_text("v1\n")
    return d


@pytest.fixture
def state_disk(project: Project) -> Iterator[Path]:
    with small_tmpfs(project.root / ".runbook", "512k") as d:
        yield d


def run(project: Project, t: Path, state_disk: Path, steps: str, *extra: str) -> dict[str, Any]:
    project.runbook("full", "hosts: localhost\nsteps:\n" + BEFORE + FILL + steps)
    res = project.exec("full", "--output", "json", "-e", f"t={t}", "-e", f"state_dir={state_disk}", *extra)
    assert res.exit_code != 70 and "internal error" not in res.output, res.output
    doc = json.loads(res.stdout)
    assert res.exit_code == 5, doc["message"]
    assert "cannot write the run state" in doc["message"]
    assert (t / "small.conf").read_text() == "v1\n"  # the change before was rolled back
    assert doc["hosts"]["localhost"]["rollback"] == "ok"
    return doc


@pytest.mark.postgres
def test_postgres_backup_and_migrate_do_nothing_without_room_for_their_snapshot(
    project: Project, t: Path, state_disk: Path, db: str, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_widgets.sql").write_text("CREATE TABLE widgets (id int);\n")
    dest = tmp_path / "backup" / "db.dump"
    steps = textwrap.dedent(
        """
        - name: backup
          postgres.backup: {dsn: "{{ dsn }}", dest: "{{ dest }}"}
        - name: migrate
          postgres.migrate: {dsn: "{{ dsn }}", dir: "{{ migrations }}"}
        """
    )
    steps = textwrap.indent(steps.strip("\n"), "  ") + "\n"
    doc = run(project, t, state_disk, steps, "-e", f"dsn={db}", "-e", f"dest={dest}", "-e", f"migrations={migrations}")
    backup = project.steps(doc)["backup"]
    assert backup["outcome"] == "failed", backup
    assert backup["msg"].startswith(("snapshot not saved, nothing changed", "not run: cannot write"))
    assert not dest.exists() and not dest.with_name(dest.name + ".partial").exists()  # no dump made
    assert "migrate" not in project.steps(doc)
    with psycopg.connect(db, autocommit=True) as conn:
        tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='public'")
        assert tables.fetchall() == []  # nothing migrated


COMPOSE = """\
services:
  api:
    image: {image}
    network_mode: host
    environment: {{APP_PORT: "{port}"}}
    stop_grace_period: 2s
    mem_limit: 200m
"""


@pytest.mark.docker
def test_compose_up_leaves_the_running_release_alone_without_room_for_its_snapshot(
    project: Project, t: Path, state_disk: Path, tmp_path: Path, dockerd: Any, request: pytest.FixtureRequest
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    compose = app / "docker-compose.yml"
    port = free_port()
    name = f"full{abs(hash(request.node.name)) % 10**6}"
    compose.write_text(COMPOSE.format(image="runbook-demo:v1", port=port))
    try:
        up = dockerd.docker("compose", "-f", str(compose), "-p", name, "up", "-d", "--wait", check=False)
        assert up.returncode == 0, up.stderr
        assert health(port)["version"] == "v1"
        new = tmp_path / "v2.yml"
        new.write_text(COMPOSE.format(image="runbook-demo:v2", port=port))
        steps = (
            '  - name: release v2\n    copy: {src: "{{ new }}", dest: "{{ compose }}"}\n'
            '  - name: up\n    compose.up: {file: "{{ compose }}", project: "{{ name }}", timeout: 60}\n'
        )
        doc = run(project, t, state_disk, steps, "-e", f"compose={compose}", "-e", f"new={new}", "-e", f"name={name}")
        failed = [s for s in doc["hosts"]["localhost"]["steps"] if s["outcome"] == "failed"]
        assert failed and failed[0]["name"] in ("release v2", "up"), failed
        assert failed[0]["msg"].startswith(("snapshot not saved, nothing changed", "not run: cannot write"))
        assert "runbook-demo:v1" in compose.read_text()
        assert health(port)["version"] == "v1"  # the live release was never touched
    finally:
        dockerd.docker("compose", "-f", str(compose), "-p", name, "down", "-t", "1", check=False)


# ----------------------------------------------------- the module's own snapshot write, exactly
@pytest.fixture
def enospc_on_snapshot_of(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``enospc_on_snapshot_of("up")``: the state write that first holds step "up"'s snapshot is cut
    short by ENOSPC (what a full disk does to a write), later ones succeed (space was freed)."""
    real_write = os.write

    def arm(step: str) -> None:
        full = {"now": False, "done": False}

        def write(fd: int, data: Any) -> int:
            if not full["done"] and os.readlink(f"/proc/self/fd/{fd}").endswith("state.tmp"):
                if full["now"]:
                    full["now"], full["done"] = False, True
                    raise OSError(errno.ENOSPC, "No space left on device")
                if re.search(f'"name": ?"{re.escape(step)}"'.encode(), bytes(data)):
                    full["now"] = True
                    return real_write(fd, bytes(data)[: len(data) // 2])
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", write)

    return arm


def run_injected(project: Project, t: Path, steps: str, *extra: str) -> dict[str, Any]:
    project.runbook("inj", "hosts: localhost\nsteps:\n" + BEFORE + steps)
    res = project.exec("inj", "--output", "json", "-e", f"t={t}", *extra)
    assert res.exit_code == 5, res.output
    doc = json.loads(res.stdout)
    assert (t / "small.conf").read_text() == "v1\n"
    return doc


@pytest.mark.postgres
def test_postgres_backup_whose_snapshot_cannot_be_written_makes_no_dump(
    project: Project, t: Path, db: str, tmp_path: Path, enospc_on_snapshot_of: Any
) -> None:
    dest = tmp_path / "backup" / "db.dump"
    enospc_on_snapshot_of("backup")
    steps = '  - name: backup\n    postgres.backup: {dsn: "{{ dsn }}", dest: "{{ dest }}"}\n'
    doc = run_injected(project, t, steps, "-e", json.dumps({"dsn": db, "dest": str(dest)}))
    backup = project.steps(doc)["backup"]
    assert backup["outcome"] == "failed"
    assert backup["msg"].startswith("snapshot not saved, nothing changed") and "No space left" in backup["msg"]
    assert not dest.exists()  # pg_dump never ran


@pytest.mark.docker
def test_compose_up_whose_snapshot_cannot_be_written_leaves_the_release(
    project: Project, t: Path, tmp_path: Path, dockerd: Any, request: pytest.FixtureRequest,
    enospc_on_snapshot_of: Any,
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    compose = app / "docker-compose.yml"
    port = free_port()
    name = f"inj{abs(hash(request.node.name)) % 10**6}"
    compose.write_text(COMPOSE.format(image="runbook-demo:v1", port=port))
    try:
        up = dockerd.docker("compose", "-f", str(compose), "-p", name, "up", "-d", "--wait", check=False)
        assert up.returncode == 0, up.stderr
        compose.write_text(COMPOSE.format(image="runbook-demo:v2", port=port))  # the new release
        enospc_on_snapshot_of("up")
        steps = '  - name: up\n    compose.up: {file: "{{ compose }}", project: "{{ name }}", timeout: 60}\n'
        doc = run_injected(project, t, steps, "-e", f"compose={compose}", "-e", f"name={name}")
        step = project.steps(doc)["up"]
        assert step["outcome"] == "failed" and step["msg"].startswith("snapshot not saved, nothing changed")
        assert health(port)["version"] == "v1"  # docker compose up never ran
    finally:
        dockerd.docker("compose", "-f", str(compose), "-p", name, "down", "-t", "1", check=False)
