"""Fast checks of the seed runbooks without services: they validate (schema, templates, undefined
variables) and the demo load balancer switches where it forwards when its upstream file is replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runbook.cli.main import cli
from tests.fixtures.redis import free_port
from tests.seeds.helpers import REPO, get
from tests.standins.base import Handler, StandIn

SEED_RUNBOOKS = ("compose-deploy", "blue-green", "e02-go-live")


@pytest.mark.parametrize("name", SEED_RUNBOOKS)
def test_seed_runbook_validates(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_PATH", str(REPO / "playbooks"))
    (tmp_path / "hosts.ini").write_text("[app]\nlocalhost ansible_connection=local\n")
    res = CliRunner().invoke(cli, ["validate", name, "-i", str(tmp_path / "hosts.ini")])
    assert res.exit_code == 0, res.output
    assert f"ok: {REPO / 'playbooks' / name}.yml" in res.output


@pytest.mark.parametrize("name", SEED_RUNBOOKS)
def test_seed_runbook_rolls_back_automatically(name: str) -> None:
    doc = yaml.safe_load((REPO / "playbooks" / f"{name}.yml").read_text())
    assert doc["rollback"] == "auto" and doc["preflight"] and doc["lock"] is True


class Named(StandIn):
    """An upstream that says who it is."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def handle(self, req: Handler) -> None:
        req.send(200, {"status": "healthy", "version": self.name})


def test_load_balancer_follows_its_upstream_file(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream.conf"
    port = free_port()
    with Named("blue") as blue, Named("green") as green:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "demo" / "lb.py"), "--listen", f"127.0.0.1:{port}",
             "--upstream-file", str(upstream)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/health"
            for _ in range(100):
                status, doc, _ = get(url)
                if status:
                    break
                time.sleep(0.05)
            assert status == 502 and "no upstream" in doc["error"]
            for color, server in (("blue", blue), ("green", green), ("blue", blue)):
                tmp = tmp_path / "upstream.tmp"  # replaced atomically, as the template step writes it
                tmp.write_text(
                    f"# color: {color}\nupstream app_live {{\n    server 127.0.0.1:{server.port};\n}}\n"
                )
                os.replace(tmp, upstream)
                status, doc, headers = get(url)
                assert (status, doc["version"]) == (200, color)
                assert headers["X-Upstream"] == f"127.0.0.1:{server.port}"
            upstream.write_text("# nothing\n")
            status, doc, _ = get(url)
            assert status == 502 and "no 'server HOST:PORT;' line" in doc["error"]
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)
