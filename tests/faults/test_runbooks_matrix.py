"""The kill matrix for the other shipped runbooks (playbooks/*.yml besides deploy-4gb, which
test_kill_matrix.py covers point by point): each is set up on the session's real services, moved to
its next release with a SIGKILL at a named point, then rolled back or resumed, and the host compared
with the exact state it must be in.

What runs (docs/fault-matrix.md): at the boundaries, both recoveries: local-smoke and coolify-deploy
every one; compose-deploy, blue-green, e02-go-live and canary-rollout a fixed choice (before the first
change, before each step the runbook is about, after the last step). Inside the mutating steps (those
chosen), `rollback` at the CI sample of their points (harness.sample): every kind of point (the
snapshot, each kind of change: command, file, API/database call; the step's end), every module of
the step and of its fallback steps, and every pass (canary-rollout: the canary and the second
batch's host) at least once, which of each kind rotating daily (RUNBOOK_FAULT_MATRIX_ROTATION=N pins
it). RUNBOOK_FAULT_MATRIX=full: every point of every step, with both recoveries.

- local-smoke: v1.0.0 served from a scratch directory, moved to v2.0.0 (files, modes, the port).
- compose-deploy: seed 001 on dockerd/PostgreSQL/Redis, v1 -> v2 (images, .env, compose file,
  migrations, schema, rows), the webhook stand-in for Slack.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    FULL,
    REPO,
    Matrix,
    Subject,
    boundary_cases,
    cases,
    differences,
    sample,
    steps_of,
    try_all,
)
from tests.faults.subjects import fresh_inventory
from tests.fixtures.files import copy_dir
from tests.fixtures.redis import free_port
from tests.seeds.helpers import Seed, get, new_database
from tests.standins.webhook import WebhookStandIn

pytestmark = [pytest.mark.slow]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


RUN_ID = re.compile(rb"\d{8}T\d{6}Z-[0-9a-f]{8}(-resume)?")


def same_but_run_ids(name: str, data: bytes) -> bytes:
    """A rendered file with the run ids it names masked (a resumed run renders its own id)."""
    return RUN_ID.sub(b"RUN", data)


def tree(root: Path, normalize: Callable[[str, bytes], bytes] = same_but_run_ids, skip=()) -> dict[str, str]:
    """path -> sha256 and mode of every file under root (directories: their mode); run ids masked."""
    import hashlib

    out: dict[str, str] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel in skip:
            continue
        mode = oct(p.stat().st_mode & 0o7777)
        if p.is_dir():
            out[rel + "/"] = mode
        else:
            out[rel] = hashlib.sha256(normalize(rel, p.read_bytes())).hexdigest()[:16] + " " + mode
    return out


def most_releases(root: Path) -> int:
    """The most releases compose.up keeps for one project under root (it keeps 5, prunes older)."""
    counts = [len([r for r in p.iterdir() if r.is_dir()]) for d in root.rglob(".runbook-releases") for p in d.iterdir() if p.is_dir()]  # fmt: skip
    return max(counts, default=0)


class Target:
    """A Subject with a baseline it can be rebuilt to (``rebuild``) and checked against; rebuilt too
    when the next point's releases could push the baseline's out of those kept (see subjects.py)."""

    def __init__(self, subject: Subject, rebuild: Callable[[], None], app: Path | None = None):
        self.subject = subject
        self._rebuild = rebuild
        self.app = app
        self.baseline: dict[str, Any] = {}

    def ensure_baseline(self, fresh_release: bool = False) -> dict[str, Any]:
        crowded = fresh_release and self.app is not None and most_releases(self.app) >= 4
        if not self.baseline:
            self._rebuild()
            self.baseline = self.subject.state()
        elif crowded or differences(self.baseline, self.subject.state()):
            self._rebuild()
            diff = differences(self.baseline, self.subject.state())
            assert not diff, "the baseline could not be rebuilt: " + "; ".join(diff)
        return self.baseline


def points_for(runbook: str) -> tuple[list[str], list[str]]:
    steps = steps_of(runbook)
    return [n for n, _, _ in steps] + ["(after the last step)"], [n for n, _, m in steps if m]


def run_boundary(m: Matrix, step: str, recovery: str) -> None:
    kps = m.boundary(step)
    if not kps:
        pytest.fail(f"'{step}' never started in the traced run of {m.subject.runbook}")
    m.run(kps[0], recovery)


def run_inside(m: Matrix, step: str, recovery: str) -> None:
    """The CI matrix tries a sample of the points inside the step (harness.sample: each kind of
    point, of step and each pass at least once, rotating daily); RUNBOOK_FAULT_MATRIX=full: all."""
    kps = m.inside(step)
    assert kps, f"no snapshot or change traced inside '{step}'"
    try_all(m, sample(m.subject.runbook, kps), recovery)


RECOVERIES_INSIDE = ["rollback", "resume"] if FULL else ["rollback"]

# ------------------------------------------------------------------------------------ local-smoke

SMOKE_BOUNDARIES, SMOKE_MUTATING = points_for("local-smoke")
SMOKE_KNOWN: dict[tuple[str, str], str] = {}
SMOKE_KNOWN_INSIDE: dict[tuple[str, str], str] = {}
# (fixed) a resume that ran "Start the service" again (its completion had been coalesced away) started
# a second service that could not bind and named it in http.pid: the killed run's kept the port


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("fault-smoke")
    smoke_dir = root / "smoke"
    port = free_port()
    inv = root / "hosts.ini"
    inv.write_text("localhost ansible_connection=local\n")

    def state() -> dict[str, Any]:
        files = tree(smoke_dir, skip={"http.log"})
        return {"files": files, "serving": listening(port)}

    subject = Subject(
        runbook="local-smoke", root=root, inventory=inv, host="localhost",
        vars={"smoke_dir": str(smoke_dir), "smoke_port": port, "smoke_version": "1.0.0"},
        change={"smoke_version": "2.0.0"}, state=state,
        healthy=lambda expected: listening(port) == expected["serving"], audit_dir=root / "audit",
    )  # fmt: skip

    def rebuild() -> None:
        # a point may leave the service its runs started (by PID, from the runbook's own pid file)
        pid_file = smoke_dir / "http.pid"
        if pid_file.is_file() and pid_file.read_text().strip().isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            for _ in range(100):
                if not listening(port):
                    break
                time.sleep(0.05)
        shutil.rmtree(smoke_dir, ignore_errors=True)
        if listening(port):  # a service a point left running without its pid file is a finding
            pytest.fail(f"a service the points before left running still holds port {port}")
        res = subject.cli("exec")
        assert res.rc == 0, res.message

    target = Target(subject, rebuild)
    yield Matrix(target, lambda st: st != target.baseline)


@pytest.mark.parametrize(("step", "recovery"), boundary_cases(SMOKE_BOUNDARIES, SMOKE_KNOWN))
def test_local_smoke_kill_at_the_boundary_before(smoke: Matrix, step: str, recovery: str) -> None:
    run_boundary(smoke, step, recovery)


@pytest.mark.parametrize(("step", "recovery"), cases(SMOKE_MUTATING, RECOVERIES_INSIDE, SMOKE_KNOWN_INSIDE))
def test_local_smoke_kill_inside(smoke: Matrix, step: str, recovery: str) -> None:
    run_inside(smoke, step, recovery)


# --------------------------------------------------------------------------------- compose-deploy

CD_ALL_BOUNDARIES, CD_ALL_MUTATING = points_for("compose-deploy")
# the CI matrix: the first step, around the migration and the deploy, after the last step (full: all)
CD_BOUNDARIES = CD_ALL_BOUNDARIES if FULL else [
    CD_ALL_BOUNDARIES[0], "Run database migrations", "Deploy services", "(after the last step)"
]  # fmt: skip
CD_MUTATING = CD_ALL_MUTATING if FULL else ["Run database migrations", "Deploy services"]
CD_KNOWN: dict[tuple[str, str], str] = {}  # the state is on disk before the first step
CD_KNOWN_INSIDE: dict[tuple[str, str], str] = {}
CD_MIGRATIONS = REPO / "migrations" / "compose-deploy"
CD_V1 = {f.name: f for f in CD_MIGRATIONS.glob("001_*.sql")}
CD_V2 = {f.name: f for f in CD_MIGRATIONS.glob("*.sql")}


@pytest.fixture(scope="module")
def compose_deploy(seed_images, postgres_server, redis_server, tmp_path_factory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("fault-cdeploy")
    dsn = new_database(postgres_server.dsn, "fcdeploy")
    hook = WebhookStandIn().__enter__()
    secret_key = "sk-" + os.urandom(8).hex()
    seed = Seed(
        runbook="compose-deploy", root=root, dsn=dsn,
        secrets=[postgres_server.password, redis_server.password, secret_key],
        vars={
            "app_name": "rbfault001" + os.urandom(2).hex(), "app_dir": str(root / "app"),
            "web_port": free_port(), "api_port": free_port(), "db_port": postgres_server.port,
            "db_name": dsn.rsplit("/", 1)[1], "db_user": postgres_server.user,
            "db_password": postgres_server.password, "redis_port": redis_server.port,
            "redis_password": redis_server.password, "secret_key": secret_key,
            "container_health_interval": "500ms", "wait_timeout": 30, "mem_web": "64M", "mem_api": "64M",
            "health_delay": 0.3, "backup_dir": str(root / "backups"), "offsite_dir": str(root / "offsite"),
            "migrations_dir": copy_dir(root, "m-v1", CD_V1),
            "notify_url": hook.url + "/services/T000/B000/faultsecret",
        },
    )  # fmt: skip
    app = Path(seed.vars["app_dir"])
    inv = fresh_inventory(root, "matrix-cdeploy ansible_connection=local")

    def state() -> dict[str, Any]:
        return {
            "api": get(f"http://127.0.0.1:{seed.vars['api_port']}/health")[1],
            "web": get(f"http://127.0.0.1:{seed.vars['web_port']}/health")[1],
            "images": seed.containers(seed.vars["app_name"]),
            "files": {n: v for n, v in tree(app).items() if not n.startswith(".runbook-releases")},
            "schema": seed.schema(),
            "migrations": seed.sql("SELECT version, checksum FROM schema_migrations ORDER BY 1"),
            "rows": seed.sql("SELECT * FROM users ORDER BY id"),
        }  # fmt: skip

    subject = Subject(
        runbook="compose-deploy", root=root, inventory=inv, host="matrix-cdeploy", vars=seed.vars,
        change={"version": "v2", "migrations_dir": copy_dir(root, "m-v2", CD_V2)}, state=state,
        healthy=lambda expected: get(f"http://127.0.0.1:{seed.vars['api_port']}/health")[1] == expected["api"],
        audit_dir=root / "audit",
    )  # fmt: skip

    def rebuild() -> None:
        seed.down(seed.vars["app_name"], app / "docker-compose.prod.yml")
        seed.sql("DROP TABLE IF EXISTS users, schema_migrations CASCADE")
        shutil.rmtree(app, ignore_errors=True)
        res = subject.cli("exec")
        assert res.rc == 0, res.message
        seed.sql(
            "INSERT INTO users (email, created_at) VALUES ('alice@example.com', '2026-01-01T00:00:00Z'),"
            " ('bob@example.com', '2026-01-01T00:00:00Z')"
        )

    target = Target(subject, rebuild, app)
    try:
        yield Matrix(target, lambda st: (st["api"] or {}).get("version") == "v2")
    finally:
        seed.down(seed.vars["app_name"], app / "docker-compose.prod.yml")
        hook.__exit__(None, None, None)


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.parametrize(("step", "recovery"), boundary_cases(CD_BOUNDARIES, CD_KNOWN))
def test_compose_deploy_kill_at_the_boundary_before(compose_deploy: Matrix, step: str, recovery: str) -> None:
    run_boundary(compose_deploy, step, recovery)


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.parametrize(("step", "recovery"), cases(CD_MUTATING, RECOVERIES_INSIDE, CD_KNOWN_INSIDE))
def test_compose_deploy_kill_inside(compose_deploy: Matrix, step: str, recovery: str) -> None:
    run_inside(compose_deploy, step, recovery)


# ------------------------------------------------------------------------------------- blue-green

BG_ALL_BOUNDARIES, BG_ALL_MUTATING = points_for("blue-green")
# the CI matrix: around the deploy of the idle colour and the traffic switch (full: every point)
BG_BOUNDARIES = BG_ALL_BOUNDARIES if FULL else [
    "Deploy {{ color }} and wait until it is ready", "Switch traffic to {{ color }}", "(after the last step)"
]  # fmt: skip
BG_MUTATING = (
    BG_ALL_MUTATING
    if FULL
    else ["Deploy {{ color }} and wait until it is ready", "Switch traffic to {{ color }}"]
)


@pytest.fixture(scope="module")
def blue_green(seed_images, postgres_server, redis_server, tmp_path_factory) -> Iterator[Matrix]:
    from tests.seeds.conftest import LoadBalancer

    root = tmp_path_factory.mktemp("fault-bluegreen")
    dsn = new_database(postgres_server.dsn, "fbluegreen")
    app = root / "app"
    lb = LoadBalancer(app / "upstream.conf", root / "lb.log")
    v = {
        "app_name": "rbfault003" + os.urandom(2).hex(), "app_dir": str(app), "blue_port": free_port(),
        "green_port": free_port(), "lb_port": lb.port, "db_port": postgres_server.port,
        "db_name": dsn.rsplit("/", 1)[1], "db_user": postgres_server.user, "db_password": postgres_server.password,
        "redis_port": redis_server.port, "redis_password": redis_server.password,
        "container_health_interval": "500ms", "wait_timeout": 30, "mem_app": "64m", "monitor_soak": 0.2,
        "monitor_samples": [1], "backup_dir": str(root / "backups"),
    }  # fmt: skip
    seed = Seed(runbook="blue-green", root=root, dsn=dsn, secrets=[], vars=v)
    inv = fresh_inventory(root, "matrix-bg ansible_connection=local")

    def state() -> dict[str, Any]:
        status, doc, headers = get(lb.url + "/health")
        return {
            "live": (status, doc, headers.get("X-Upstream")),
            "blue": seed.containers(v["app_name"] + "-blue"),
            "green": seed.containers(v["app_name"] + "-green"),
            "files": {n: f for n, f in tree(app).items() if ".runbook-releases" not in n},
        }

    subject = Subject(
        runbook="blue-green", root=root, inventory=inv, host="matrix-bg", vars=v,
        change={"color": "blue", "app_version": "v2"}, state=state,
        healthy=lambda expected: state()["live"] == expected["live"], cli_args=["--force-window"],
        audit_dir=root / "audit",
    )  # fmt: skip

    def rebuild() -> None:
        for color in ("blue", "green"):
            seed.down(f"{v['app_name']}-{color}", app / color / "docker-compose.yml")
        shutil.rmtree(app, ignore_errors=True)
        for color in ("blue", "green"):  # v1 in both colours, green live
            res = subject.cli("exec", overrides={"color": color, "app_version": "v1"})
            assert res.rc == 0, res.message

    try:
        yield Matrix(Target(subject, rebuild, app), lambda st: (st["live"][1] or {}).get("version") == "v2")
    finally:
        lb.stop()
        for color in ("blue", "green"):
            seed.down(f"{v['app_name']}-{color}", app / color / "docker-compose.yml")


@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.parametrize(("step", "recovery"), boundary_cases(BG_BOUNDARIES, {}))
def test_blue_green_kill_at_the_boundary_before(blue_green: Matrix, step: str, recovery: str) -> None:
    run_boundary(blue_green, step, recovery)


@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.parametrize(("step", "recovery"), cases(BG_MUTATING, RECOVERIES_INSIDE, {}))
def test_blue_green_kill_inside(blue_green: Matrix, step: str, recovery: str) -> None:
    run_inside(blue_green, step, recovery)


# ------------------------------------------------------------------------------------ e02-go-live

E02_ALL_BOUNDARIES, E02_ALL_MUTATING = points_for("e02-go-live")
E02_FREEZE, E02_MIGRATE = "Freeze document imports for the migration", "Migrate to the tagging schema"
E02_DEPLOY = "Step 2: deploy the API ({{ api_image }})"
# the CI matrix: imports frozen, the migration, the API deploy (full: every point)
E02_BOUNDARIES = (
    E02_ALL_BOUNDARIES if FULL else [E02_FREEZE, E02_MIGRATE, E02_DEPLOY, "(after the last step)"]
)
E02_MUTATING = E02_ALL_MUTATING if FULL else [E02_FREEZE, E02_MIGRATE, E02_DEPLOY]
E02_DOCS = 300
E02_BEFORE = str(REPO / "tests" / "seeds" / "playbooks" / "e02-before-go-live.yml")


@pytest.fixture(scope="module")
def e02(seed_images, postgres_server, tmp_path_factory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("fault-e02")
    dsn = new_database(postgres_server.dsn, "fe02")
    hook = WebhookStandIn().__enter__()
    app = root / "app"
    v = {
        "app_name": "rbfault004" + os.urandom(2).hex(), "app_dir": str(app), "api_port": free_port(),
        "importer_port": free_port(), "db_port": postgres_server.port, "db_name": dsn.rsplit("/", 1)[1],
        "db_user": postgres_server.user, "db_password": postgres_server.password,
        "admin_token": "adm-" + os.urandom(8).hex(), "rollbar_token": "rb-" + os.urandom(4).hex(),
        "expected_documents": E02_DOCS, "container_health_interval": "500ms", "wait_timeout": 30,
        "mem_api": "64m", "backup_dir": str(root / "backups"), "latency_samples": [1],
        **{f"{ch}_webhook": f"{hook.url}/{ch}/T000/secret" for ch in ("ops", "domain_leads", "slack", "statuspage")},
    }  # fmt: skip
    seed = Seed(runbook="e02-go-live", root=root, dsn=dsn, secrets=[], vars=v)
    inv = fresh_inventory(root, "matrix-e02 ansible_connection=local")

    def api(path: str = "/health") -> Any:
        return get(f"http://127.0.0.1:{v['api_port']}/cgi-bin/app{path}")[1]

    def state() -> dict[str, Any]:
        return {
            "api": api(),
            "importer": get(f"http://127.0.0.1:{v['importer_port']}/cgi-bin/app/health")[1],
            "images": seed.containers(v["app_name"]),
            "files": {n: f for n, f in tree(app).items() if ".runbook-releases" not in n},
            "schema": seed.schema(),
            "triggers": seed.sql("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2"),
            "rows": seed.sql("SELECT id, title, kind, created_at FROM documents ORDER BY id"),
            "sequence": seed.sql("SELECT last_value, is_called FROM documents_id_seq"),
        }  # fmt: skip

    subject = Subject(
        runbook="e02-go-live", root=root, inventory=inv, host="matrix-e02", vars=v, change={}, state=state,
        healthy=lambda expected: api() == expected["api"], cli_args=["--force-window"], audit_dir=root / "audit",
    )  # fmt: skip

    def rebuild() -> None:
        seed.down(v["app_name"], app / "docker-compose.yml")
        shutil.rmtree(app, ignore_errors=True)
        seed.sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        seed.sql(
            "CREATE TABLE documents (id bigserial PRIMARY KEY, title text NOT NULL, kind text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT '2026-01-01T00:00:00Z')"
        )
        seed.sql(
            "INSERT INTO documents (title, kind) SELECT 'doc-' || i || '.pdf', (ARRAY['invoice', 'memo'])"
            f"[1 + i % 2] FROM generate_series(1, {E02_DOCS}) i"
        )
        res = subject.cli("exec", runbook=E02_BEFORE, overrides={"repo_dir": str(REPO)})
        assert res.rc == 0, res.message

    try:
        yield Matrix(Target(subject, rebuild, app), lambda st: (st["api"] or {}).get("tags_enabled") is True)
    finally:
        seed.down(v["app_name"], app / "docker-compose.yml")
        hook.__exit__(None, None, None)


E02_KNOWN: dict[tuple[str, str], str] = {}  # a step is on record as done before its end (resume)
E02_KNOWN_INSIDE: dict[tuple[str, str], str] = {}  # an undo: step is on record before it starts


@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.parametrize(("step", "recovery"), boundary_cases(E02_BOUNDARIES, E02_KNOWN))
def test_e02_go_live_kill_at_the_boundary_before(e02: Matrix, step: str, recovery: str) -> None:
    run_boundary(e02, step, recovery)


@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.parametrize(("step", "recovery"), cases(E02_MUTATING, RECOVERIES_INSIDE, E02_KNOWN_INSIDE))
def test_e02_go_live_kill_inside(e02: Matrix, step: str, recovery: str) -> None:
    run_inside(e02, step, recovery)


# ---------------------------------------------------------------------------------- canary-rollout

CANARY_ALL_BOUNDARIES, CANARY_ALL_MUTATING = points_for("canary-rollout")
CANARY_DEPLOY = "Deploy the release"
# the CI matrix: before the deploy (the canary batch), after the last step (both batches done); inside
# the deploy, on the canary and on the second batch's host (full: every point)
CANARY_BOUNDARIES = CANARY_ALL_BOUNDARIES if FULL else [CANARY_DEPLOY, "(after the last step)"]
CANARY_MUTATING = CANARY_ALL_MUTATING if FULL else [CANARY_DEPLOY]
CANARY_HOSTS = ("matrix-canary1", "matrix-canary2")
CANARY_GATES = {"error_rate_query": "vector(0.002)", "latency_p95_query": "vector(1.5)"}


def _app_state(host: str, port: int, app: Path, project: str, lock: str) -> dict[str, Any]:
    """A deploy-4gb-like app on one host: what it serves, its containers' images, its files, its lock."""
    from runbook.execute.lock import lock_dir
    from tests.faults.subjects import _containers
    from tests.fixtures.health import health

    return {
        "health": health(port),
        "containers": _containers(project),
        "files": {n: f for n, f in tree(app).items() if ".runbook-releases" not in n},
        "lock_held": Path(lock_dir(lock, host)).exists(),
    }


def _compose_down(project: str, compose_file: Path) -> None:
    import subprocess

    args = ["-f", str(compose_file)] if compose_file.exists() else []
    subprocess.run(["docker", "compose", "-p", project, *args, "down", "--timeout", "1"],
                   capture_output=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def canary(seed_images, prometheus, tmp_path_factory) -> Iterator[Matrix]:
    from runbook.execute.lock import lock_dir
    from tests.fixtures.health import health

    root = tmp_path_factory.mktemp("fault-canary")
    tag = os.urandom(2).hex()
    hosts = {h: {"port": free_port(), "dir": root / h, "project": f"rbfault005{tag}{n}"}
             for n, h in enumerate(CANARY_HOSTS)}  # fmt: skip
    inv = fresh_inventory(root, "\n".join(
        f"{h} ansible_connection=local app_port={x['port']} app_dir={x['dir']} app_name={x['project']}"
        for h, x in hosts.items()
    ))  # fmt: skip
    v = {"app_version": "v1", "prometheus_url": prometheus.url, "gate_hold": "0.3s", "gate_every": 0.1,
         "notify_url": "", "health_delay": 0.3, "container_health_interval": "500ms", "wait_timeout": 60,
         **CANARY_GATES}  # fmt: skip

    def state() -> dict[str, Any]:
        return {h: _app_state(h, x["port"], x["dir"], x["project"], "canary-rollout") for h, x in hosts.items()}

    subject = Subject(
        runbook="canary-rollout", root=root, inventory=inv, host=CANARY_HOSTS[0], vars=v,
        change={"app_version": "v2"}, state=state,
        healthy=lambda expected: all(health(x["port"]) == expected[h]["health"] for h, x in hosts.items()),
        audit_dir=root / "audit",
    )  # fmt: skip

    def rebuild() -> None:
        for h, x in hosts.items():
            _compose_down(x["project"], x["dir"] / "docker-compose-4gb.yml")
            shutil.rmtree(x["dir"], ignore_errors=True)
            shutil.rmtree(lock_dir("canary-rollout", h), ignore_errors=True)
        res = subject.cli("exec")
        assert res.rc == 0, res.message

    try:
        yield Matrix(Target(subject, rebuild, root),
                     lambda st: all((st[h]["health"] or {}).get("version") == "v2" for h in hosts))  # fmt: skip
    finally:
        for x in hosts.values():
            _compose_down(x["project"], x["dir"] / "docker-compose-4gb.yml")


@pytest.mark.docker
@pytest.mark.parametrize(("step", "recovery"), boundary_cases(CANARY_BOUNDARIES, {}))
def test_canary_rollout_kill_at_the_boundary_before(canary: Matrix, step: str, recovery: str) -> None:
    run_boundary(canary, step, recovery)


@pytest.mark.docker
@pytest.mark.parametrize(("step", "recovery"), cases(CANARY_MUTATING, RECOVERIES_INSIDE, {}))
def test_canary_rollout_kill_inside(canary: Matrix, step: str, recovery: str) -> None:
    run_inside(canary, step, recovery)


@pytest.mark.docker
def test_canary_rollout_points_cover_both_batches(canary: Matrix) -> None:
    """The deploy's points are traced on the canary and on the second batch's host (N counts them:
    one snapshot and one end per host)."""
    for kind in ("snapshot", "step.end"):
        passes = {k.point.rsplit("|", 1)[1] for k in canary.inside(CANARY_DEPLOY) if f"|{kind}|" in k.point}
        assert passes == {"1", "2"}, canary.inside(CANARY_DEPLOY)


# ---------------------------------------------------------------------------------- coolify-deploy

COOLIFY_ALL_BOUNDARIES, COOLIFY_MUTATING = points_for("coolify-deploy")
COOLIFY_APP = "ok0s0cgw8ck0w8kgs8kk4kk8"
COOLIFY_HOST = "matrix-coolify"


@pytest.fixture(scope="module")
def coolify(seed_images, tmp_path_factory) -> Iterator[Matrix]:
    """coolify-deploy with Coolify's deployments failing (the stand-in), so that every release goes
    out through the runbook's fallback: the compose file deployed on the host by compose.up."""
    from runbook.execute.lock import lock_dir
    from tests.fixtures.health import health
    from tests.standins.coolify import CoolifyStandIn

    root = tmp_path_factory.mktemp("fault-coolify")
    port, project, app = free_port(), "rbfault006" + os.urandom(2).hex(), root / "app"
    inv = fresh_inventory(root, f"{COOLIFY_HOST} ansible_connection=local app_port={port} app_dir={app} "
                                f"app_name={project} coolify_app_uuid={COOLIFY_APP}")  # fmt: skip
    c = CoolifyStandIn().__enter__()
    c.add_app(COOLIFY_APP, "web", commit="1111111")
    c.add_finished(COOLIFY_APP, "1111111")
    c.behaviour.outcome = "failed"  # every deploy through Coolify fails: the SSH fallback deploys
    v = {"app_version": "v1", "coolify_url": c.url, "coolify_token": c.token, "coolify_timeout": 2,
         "coolify_poll": 0.05, "notify_url": "", "health_delay": 0.3, "health_retries": 3,
         "container_health_interval": "500ms", "wait_timeout": 60}  # fmt: skip

    def state() -> dict[str, Any]:
        return _app_state(COOLIFY_HOST, port, app, project, "coolify-deploy")

    subject = Subject(
        runbook="coolify-deploy", root=root, inventory=inv, host=COOLIFY_HOST, vars=v,
        change={"app_version": "v2"}, state=state,
        healthy=lambda expected: health(port) == expected["health"], audit_dir=root / "audit",
    )  # fmt: skip

    def rebuild() -> None:
        _compose_down(project, app / "docker-compose-4gb.yml")
        shutil.rmtree(app, ignore_errors=True)
        shutil.rmtree(lock_dir("coolify-deploy", COOLIFY_HOST), ignore_errors=True)
        res = subject.cli("exec")
        assert res.rc == 0, res.message

    try:
        yield Matrix(Target(subject, rebuild, app), lambda st: (st["health"] or {}).get("version") == "v2")
    finally:
        _compose_down(project, app / "docker-compose-4gb.yml")
        c.__exit__(None, None, None)


@pytest.mark.docker
@pytest.mark.parametrize(("step", "recovery"), boundary_cases(COOLIFY_ALL_BOUNDARIES, {}))
def test_coolify_deploy_kill_at_the_boundary_before(coolify: Matrix, step: str, recovery: str) -> None:
    run_boundary(coolify, step, recovery)


@pytest.mark.docker
# (fixed) "Coolify did not answer" in the undo: the stand-in, as Coolify, answers 429 past 200 requests
# a minute per token (every point deploys through it, polling at 0.05 s, and pages its growing history);
# reads now wait out Retry-After (runbook/kinds/coolify.py Api.call) and a 429 is never "did not answer"
@pytest.mark.parametrize(("step", "recovery"), cases(COOLIFY_MUTATING, RECOVERIES_INSIDE, {}))
def test_coolify_deploy_kill_inside(coolify: Matrix, step: str, recovery: str) -> None:
    """Inside the Coolify step: the API's deploy, then each of its fallback steps (their snapshots
    and changes: the rendered files, `docker compose up`)."""
    run_inside(coolify, step, recovery)


# ------------------------------------------------------------------- coolify-deploy, through Coolify

COOLIFY_API_HOST = "matrix-coolify-api"


@pytest.fixture(scope="module")
def coolify_api(tmp_path_factory) -> Iterator[Matrix]:
    """coolify-deploy with Coolify answering and deploying (the stand-in): nothing changes on the
    host itself; what Coolify runs is the application's newest finished deployment, and the app's
    health answer (a server of the test's own) reports the version of the commit it runs."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from runbook.execute.lock import lock_dir
    from tests.fixtures.health import health
    from tests.standins.coolify import CoolifyStandIn

    root = tmp_path_factory.mktemp("fault-coolify-api")
    c = CoolifyStandIn().__enter__()
    versions = {"1111111": "v1", "2222222": "v2"}

    def live() -> str | None:
        with c.lock:
            done = [d for d in c.deployments.values() if c.status_of(d.uuid) == "finished"]
        return max(done, key=lambda d: d.id).commit if done else None

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "healthy", "version": versions.get(live() or "", "?")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    port = server.server_address[1]
    inv = fresh_inventory(root, f"{COOLIFY_API_HOST} ansible_connection=local app_port={port} "
                                f"app_dir={root / 'app'} app_name=rbfault007 coolify_app_uuid={COOLIFY_APP}")  # fmt: skip
    v = {"app_version": "v1", "coolify_url": c.url, "coolify_token": c.token, "coolify_timeout": 10,
         "coolify_poll": 0.05, "notify_url": "", "health_delay": 0.3, "health_retries": 3}  # fmt: skip

    def state() -> dict[str, Any]:
        with c.lock:
            deploys = sorted(d.commit for d in c.deployments.values())
        return {"health": health(port), "live": live(), "deployments": deploys,
                "lock_held": Path(lock_dir("coolify-deploy", COOLIFY_API_HOST)).exists(),
                "files": tree(root / "app")}  # fmt: skip

    subject = Subject(
        runbook="coolify-deploy", root=root, inventory=inv, host=COOLIFY_API_HOST, vars=v,
        change={"app_version": "v2"}, state=state,
        healthy=lambda expected: health(port) == expected["health"], audit_dir=root / "audit",
    )  # fmt: skip

    def rebuild() -> None:  # Coolify runs commit 1111111; its next deployment builds 2222222
        with c.lock:
            c.deployments.clear()
            c.requests.clear()
        c.add_app(COOLIFY_APP, "web", commit="1111111")
        c.add_finished(COOLIFY_APP, "1111111")
        c.apps[COOLIFY_APP].commit = "2222222"
        shutil.rmtree(lock_dir("coolify-deploy", COOLIFY_API_HOST), ignore_errors=True)

    try:
        yield Matrix(Target(subject, rebuild), lambda st: st["live"] == "2222222", "coolify-api", undoable=False)
    finally:
        server.shutdown()
        server.server_close()
        c.__exit__(None, None, None)


@pytest.mark.parametrize(("step", "recovery"), cases(COOLIFY_ALL_BOUNDARIES, ["resume"], {}))
def test_coolify_api_deploy_kill_at_the_boundary_then_resume(coolify_api: Matrix, step: str, recovery: str) -> None:
    """Resumed, the run ends as a whole one does: one deployment through Coolify, never two (a
    completed Coolify step is not run again)."""
    run_boundary(coolify_api, step, recovery)


def test_coolify_api_deploy_killed_before_it_rolls_back_to_nothing(coolify_api: Matrix) -> None:
    run_boundary(coolify_api, COOLIFY_ALL_BOUNDARIES[0], "rollback")


def test_coolify_api_deploy_rollback_after_it_names_what_to_roll_back_to(coolify_api: Matrix) -> None:
    """Killed after Coolify finished: the API cannot redeploy an earlier deployment, so the rollback
    must not claim it rolled back: exit 4, naming the deployment and commit to go back to in Coolify."""
    from tests.faults.harness import MATRIX, Outcome, kill_at

    (kp,) = coolify_api.boundary("Health check")
    coolify_api.target.ensure_baseline()
    run_id, _ = kill_at(coolify_api.subject, kp)
    back = coolify_api.subject.cli("rollback", "--run", run_id)
    honest = back.rc == 4 and "roll back to deployment" in back.message and "(commit 1111111" in back.message
    # not restored (the API cannot), and said so: the row counts it as not restored, with why
    MATRIX.append(Outcome("coolify-deploy", "coolify-api", kp.id, "boundary", "rollback", False, back.rc, None,
                          "by design: exit 4 naming the deployment and commit to roll back to in Coolify's UI"
                          if honest else back.message[:300]).row())  # fmt: skip
    assert honest, back.message
