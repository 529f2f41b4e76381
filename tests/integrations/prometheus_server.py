"""A real Prometheus (Debian package ``prometheus``) as the test's own process: 127.0.0.1, a free port,
a temp storage dir, scraping itself every second; stopped by PID."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fixtures.procs import stop_pid
from tests.fixtures.redis import free_port


@dataclass
class PrometheusServer:
    port: int
    pid: int
    dir: Path
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> Any:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        stop_pid(self.pid, self._proc, grace=20)


def start_prometheus(tmp_dir: Path) -> PrometheusServer:
    exe = shutil.which("prometheus")
    if exe is None:
        raise RuntimeError("prometheus not found (apt-get install prometheus; scripts/setup-dev.sh does)")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = tmp_dir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    log = (tmp_dir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    server = PrometheusServer(port, proc.pid, tmp_dir, proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(tmp_dir / 'prometheus.log').read_text()[-2000:]}")
        try:
            # ready, and it has scraped itself at least once (so `up` has a sample)
            if server.query('up{job="prometheus"}')["data"]["result"]:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("prometheus did not become ready within 60 s")
