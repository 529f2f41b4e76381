"""compose.* step kinds through the real Driver against a real dockerd (tests/fixtures/dockerd.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import Runner
from tests.fixtures.health import health
from tests.fixtures.redis import free_port

COMPOSE = """\
services:
  api:
    image: {image}
    network_mode: host
    environment: {{APP_PORT: "{port}"}}
    env_file: [app.env]
    stop_grace_period: 2s
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:{port}/ping"]
      interval: 1s
      timeout: 2s
      retries: 3
    deploy:
      resources:
        limits: {{memory: {mem}}}
  prometheus:
    image: runbook-demo:v1
    network_mode: host
    environment: {{APP_ROLE: sidecar}}
    stop_grace_period: 2s
    mem_limit: 200m
"""


class Stack:
    def __init__(self, root: Path, project: str):
        self.dir = root / "app"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.file = self.dir / "docker-compose.yml"
        self.env = self.dir / "app.env"
        self.project = project
        self.port = free_port()

    def write(self, image: str, mem: str = "500m", env: str = "RELEASE=one\n") -> None:
        self.file.write_text(COMPOSE.format(image=image, port=self.port, mem=mem))
        self.env.write_text(env)

    @property
    def args(self) -> dict:
        return {"file": str(self.file), "project": self.project, "env_file": str(self.env), "timeout": 60}


@pytest.fixture
def stack(tmp_path: Path, dockerd, request) -> Stack:
    s = Stack(tmp_path, f"t{abs(hash(request.node.name)) % 10**8}")
    yield s
    dockerd.docker(
        "compose", "-f", str(s.file), "-p", s.project, "down", "-t", "1", "--remove-orphans", check=False
    )


# ----------------------------------------------------------------------------------- budget (fast)


def test_budget_passes_with_the_seed_allocation(runner: Runner, tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(COMPOSE.format(image="x", port=1, mem="500m"))
    out = runner.run(
        "compose.budget",
        {
            "file": str(tmp_path / "c.yml"),
            "total_mb": 4096,
            "reserve_mb": 500,
            "extra": {"postgres": 800, "redis": "300m"},
        },
    )
    assert out.ok, out.msg
    assert out.data["allocated_mb"] == 500 + 200 + 800 + 300
    assert "api" in out.stdout and "12.2%" in out.stdout and "(outside compose)" in out.stdout


def test_budget_fails_naming_each_share_and_missing_limits(runner: Runner, tmp_path: Path) -> None:
    text = COMPOSE.format(image="x", port=1, mem="3g") + "  worker:\n    image: x\n"
    (tmp_path / "c.yml").write_text(text)
    out = runner.run("compose.budget", {"file": str(tmp_path / "c.yml"), "total_mb": 4096, "reserve_mb": 500})
    assert not out.ok
    assert "service worker has no memory limit" in out.msg
    assert (
        out.data["allocated_mb"] == 3072 + 200 and "exceeded" not in out.msg
    )  # fits, but a service has no limit
    assert "NO MEMORY LIMIT" in out.msg and "api" in out.msg and "75.0%" in out.msg


def test_budget_over_host_memory_from_a_template(tmp_path: Path) -> None:
    tpl = tmp_path / "templates"
    tpl.mkdir()
    (tpl / "c.yml.j2").write_text("services:\n  api:\n    image: x\n    mem_limit: {{ api_mb }}m\n")
    r = Runner(project_dir=tmp_path)
    out = r.run(
        "compose.budget", {"template": "c.yml.j2", "reserve_mb": 500}, r.ctx(variables={"api_mb": 10**7})
    )
    assert not out.ok and "memory budget exceeded" in out.msg
    assert out.data["total_mb"] > 0  # the host's memory (meminfo capped by cgroups)


def test_budget_rejects_bad_sizes(runner: Runner, tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text("services:\n  api:\n    image: x\n    mem_limit: lots\n")
    out = runner.run("compose.budget", {"file": str(tmp_path / "c.yml"), "total_mb": 4096})
    assert not out.ok and "invalid size: 'lots'" in out.msg  # compose's own words
    hand = runner.run(
        "compose.budget", {"file": str(tmp_path / "c.yml"), "total_mb": 4096, "docker": "/nonexistent/docker"}
    )
    assert not hand.ok and "'lots' is not a size" in hand.msg  # the hand parser, where compose is missing


def test_budget_reads_the_file_as_docker_compose_config_does(runner: Runner, tmp_path: Path) -> None:
    """extends, profiles and ${VAR} from the project's .env: as `up` would run it (issue 13 item 6)."""
    (tmp_path / ".env").write_text("API_MEM=700m\n")
    (tmp_path / "base.yml").write_text("services:\n  common:\n    image: x\n    mem_limit: 256m\n")
    (tmp_path / "c.yml").write_text(
        "services:\n"
        "  api:\n    image: x\n    env_file: [app.env]\n"
        "    deploy: {resources: {limits: {memory: '${API_MEM}'}}}\n"
        "  worker:\n    extends: {file: base.yml, service: common}\n    deploy: {replicas: 2}\n"
        "  debug:\n    image: x\n    profiles: [debug]\n    mem_limit: 1g\n"
    )
    args = {"file": str(tmp_path / "c.yml"), "total_mb": 4096}
    out = runner.run("compose.budget", args)
    assert out.ok, out.msg  # app.env is not written yet (pre-flight): it holds no limit
    assert out.data["services"] == {"api": 700, "worker": 256}  # the debug profile is not counted
    assert out.data["allocated_mb"] == 700 + 2 * 256 and out.data["read_by"] == "docker compose config"
    with_debug = runner.run("compose.budget", {**args, "profiles": ["debug"]})
    assert with_debug.data["services"] == {"api": 700, "worker": 256, "debug": 1024}
    hand = runner.run("compose.budget", {**args, "docker": "/nonexistent/docker"})
    assert not hand.ok and "uses variable interpolation" in hand.msg  # what the hand parser cannot do


# ----------------------------------------------------------------------------------- docker (slow)

pytestmark_docker = [pytest.mark.slow, pytest.mark.docker]


@pytest.mark.slow
@pytest.mark.docker
def test_up_records_release_and_undo_brings_previous_back(runner: Runner, stack: Stack) -> None:
    stack.write("runbook-demo:v1", env="RELEASE=one\n")
    first = runner.run("compose.up", stack.args, runner.ctx("rel1"))
    assert first.ok, first.msg
    assert health(stack.port) == {"status": "healthy", "version": "v1", "role": "api"}
    store = stack.dir / ".runbook-releases" / stack.project
    assert (store / "current").read_text().strip() == "rel1"
    assert (store / "rel1" / "env.0").read_text() == "RELEASE=one\n"
    assert store.stat().st_mode & 0o077 == 0 and (store / "rel1").stat().st_mode & 0o077 == 0

    stack.write("runbook-demo:v2", env="RELEASE=two\n")
    second = runner.run("compose.up", stack.args, runner.ctx("rel2"))
    assert second.ok, second.msg
    snap = runner.last.snapshots[0]
    assert snap["previous_release"] == "rel1" and snap["images"]["api"]["image"] == "runbook-demo:v1"
    assert health(stack.port)["version"] == "v2"

    back = runner.undo("compose.up", stack.args, snap)
    assert back.ok, back.msg
    assert health(stack.port)["version"] == "v1"
    assert "runbook-demo:v1" in stack.file.read_text() and stack.env.read_text() == "RELEASE=one\n"
    assert (store / "current").read_text().strip() == "rel1"
    again = runner.undo("compose.up", stack.args, snap)  # idempotent (the engine may undo twice)
    assert again.ok, again.msg


@pytest.mark.slow
@pytest.mark.docker
def test_first_release_undo_takes_the_stack_down(runner: Runner, stack: Stack, dockerd) -> None:
    stack.write("runbook-demo:v1")
    out = runner.run("compose.up", stack.args)
    assert out.ok, out.msg
    back = runner.undo("compose.up", stack.args, runner.last.snapshots[0])
    assert back.ok and "first release removed" in back.msg
    assert health(stack.port) is None


@pytest.mark.slow
@pytest.mark.docker
def test_undone_first_release_leaves_no_current_marker(runner: Runner, stack: Stack) -> None:
    store = stack.dir / ".runbook-releases" / stack.project
    stack.write("runbook-demo:v1")
    assert runner.run("compose.up", stack.args, runner.ctx("first1")).ok
    assert (store / "current").read_text().strip() == "first1"
    back = runner.undo("compose.up", stack.args, runner.last.snapshots[0])
    assert back.ok and "first release removed" in back.msg, back.msg
    assert not (store / "current").exists()  # the undone release is no longer live

    out = runner.run("compose.up", stack.args, runner.ctx("first2"))  # a first deploy again
    assert out.ok and out.data["previous_release"] is None, out.msg
    snap = runner.last.snapshots[0]
    assert snap["previous_release"] is None
    assert (store / "current").read_text().strip() == "first2"
    back = runner.undo("compose.up", stack.args, snap)
    assert back.ok and "first release removed" in back.msg, back.msg
    assert health(stack.port) is None and not (store / "current").exists()
    assert runner.undo("compose.up", stack.args, snap).ok  # idempotent


@pytest.mark.slow
@pytest.mark.docker
def test_failed_up_is_undone_to_the_previous_release(runner: Runner, stack: Stack) -> None:
    stack.write("runbook-demo:v1")
    assert runner.run("compose.up", stack.args, runner.ctx("good")).ok
    stack.write("runbook-demo:broken")
    out = runner.run("compose.up", {**stack.args, "timeout": 15})
    assert not out.ok and "docker compose up failed" in out.msg
    back = runner.undo("compose.up", stack.args, runner.last.snapshots[0])
    assert back.ok, back.msg
    assert health(stack.port)["version"] == "v1"


@pytest.mark.slow
@pytest.mark.docker
def test_undo_retags_an_image_whose_tag_moved(runner: Runner, stack: Stack, dockerd) -> None:
    dockerd.docker("tag", "runbook-demo:v1", "runbook-demo:moving")
    v1_id = dockerd.docker("image", "inspect", "-f", "{{.Id}}", "runbook-demo:v1").stdout.strip()
    stack.write("runbook-demo:moving")
    assert runner.run("compose.up", stack.args, runner.ctx("m1")).ok
    dockerd.docker("tag", "runbook-demo:v2", "runbook-demo:moving")  # a new "latest" arrives
    assert runner.run("compose.up", stack.args, runner.ctx("m2")).ok
    assert health(stack.port)["version"] == "v2"
    back = runner.undo("compose.up", stack.args, runner.last.snapshots[0])
    assert back.ok and "re-tagged runbook-demo:moving" in back.msg, back.msg
    assert health(stack.port)["version"] == "v1"
    assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", "runbook-demo:moving").stdout.strip() == v1_id


@pytest.mark.slow
@pytest.mark.docker
def test_ps_reports_oom_killed_and_crashed_containers(runner: Runner, stack: Stack) -> None:
    import time

    stack.write("runbook-demo:oom", mem="64m")
    assert runner.run("compose.up", {**stack.args, "wait": False}).ok
    deadline = time.monotonic() + 60
    out = runner.run("compose.ps", stack.args)
    while out.ok and time.monotonic() < deadline:
        time.sleep(0.5)
        out = runner.run("compose.ps", stack.args)
    assert not out.ok and "OOM-killed (memory limit 64 MB)" in out.msg, out.msg
    assert "OOM" in out.stdout

    stack.write("runbook-demo:crash")
    assert runner.run("compose.up", {**stack.args, "wait": False}).ok
    deadline = time.monotonic() + 60
    out = runner.run("compose.ps", stack.args)
    while out.ok and time.monotonic() < deadline:
        time.sleep(0.5)
        out = runner.run("compose.ps", stack.args)
    assert not out.ok and ("restart" in out.msg or "exited with code 3" in out.msg), out.msg


@pytest.mark.slow
@pytest.mark.docker
def test_ps_ok_and_missing_service(runner: Runner, stack: Stack) -> None:
    stack.write("runbook-demo:v1")
    assert runner.run("compose.up", stack.args).ok
    out = runner.run("compose.ps", stack.args)
    assert out.ok, out.msg
    assert {c["service"] for c in out.data["containers"]} == {"api", "prometheus"}
    out = runner.run("compose.ps", {**stack.args, "expect_running": ["api", "grafana"]})
    assert not out.ok and "grafana: no running container" in out.msg


@pytest.mark.slow
@pytest.mark.docker
def test_pull_skips_local_images_and_fails_on_unreachable_registry(runner: Runner, stack: Stack) -> None:
    stack.write("runbook-demo:v1")
    out = runner.run("compose.pull", stack.args)
    assert out.ok and not out.changed and out.data["present"] == ["runbook-demo:v1"], out.msg
    stack.write("127.0.0.1:9/runbook-demo:v9")  # a registry on loopback that is not there
    out = runner.run("compose.pull", stack.args)
    assert not out.ok and "127.0.0.1:9/runbook-demo:v9" in out.msg


@pytest.mark.slow
@pytest.mark.docker
def test_dry_run_changes_nothing(stack: Stack) -> None:
    stack.write("runbook-demo:v1")
    r = Runner(dry_run=True)
    out = r.run("compose.up", stack.args)
    assert out.ok and out.changed
    assert any("up -d --wait" in p.summary for p in r.last.planned)
    assert health(stack.port) is None
    assert not (stack.dir / ".runbook-releases").exists()


@pytest.mark.slow
@pytest.mark.docker
def test_down_and_its_undo(runner: Runner, stack: Stack) -> None:
    stack.write("runbook-demo:v1")
    assert runner.run("compose.up", stack.args, runner.ctx("d1")).ok
    out = runner.run("compose.down", stack.args)
    assert out.ok and out.changed
    assert health(stack.port) is None
    back = runner.undo("compose.down", stack.args, runner.last.snapshots[0])
    assert back.ok, back.msg
    assert health(stack.port)["version"] == "v1"


@pytest.mark.slow
@pytest.mark.docker
def test_dry_run_before_the_file_exists(tmp_path: Path, dockerd) -> None:
    r = Runner(dry_run=True)
    args = {"file": str(tmp_path / "nope" / "docker-compose.yml"), "project": "never"}
    out = r.run("compose.up", args)
    assert out.ok, out.msg
    assert any("up -d --wait" in p.summary for p in r.last.planned)
    out = r.run("compose.pull", args)
    assert out.ok and "would pull" in out.msg
