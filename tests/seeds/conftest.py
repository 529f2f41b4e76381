"""Fixtures for the seed runbooks (compose-deploy, blue-green, e02-go-live): the session's real dockerd,
PostgreSQL and Redis (tests/fixtures), the images the seeds need, the webhook stand-in, and the
blue-green load balancer (demo/lb.py) as a process of the test's own, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.dockerd import DockerD, dockerd  # noqa: F401 - session fixture
from tests.fixtures.postgres import postgres_server  # noqa: F401 - session fixture
from tests.fixtures.redis import free_port, redis_server  # noqa: F401 - session fixture
from tests.standins.webhook import WebhookStandIn

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def seed_images(dockerd: DockerD) -> DockerD:  # noqa: F811 - the imported fixture
    """Seed 001's registry names for the demo images, and seed 004's E02 images."""
    for script in ("tag-registry-images.sh", "build-e02-images.sh"):
        res = subprocess.run(
            ["sh", str(REPO / "demo" / script)],
            env={**os.environ, **dockerd.env()},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if res.returncode != 0:
            pytest.fail(f"demo/{script} failed:\n{res.stdout}\n{res.stderr}")
    return dockerd


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookStandIn]:
    with WebhookStandIn() as hook:
        yield hook


class LoadBalancer:
    """demo/lb.py on 127.0.0.1:port, forwarding to whatever ``upstream_file`` names."""

    def __init__(self, upstream_file: Path, log: Path):
        self.port = free_port()
        self.upstream_file = upstream_file
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "demo" / "lb.py"), "--listen", f"127.0.0.1:{self.port}",
             "--upstream-file", str(upstream_file)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
