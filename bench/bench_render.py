#!/usr/bin/env python3
"""What Jinja2's sandbox costs: the templates of deploy-4gb's vars and steps rendered through
runbook's Templar (lazy variables, native results), with the sandboxed environment runbook uses and,
for reference, a plain one. CPU time (process_time), best of several rounds, per render.

    python3 bench/bench_render.py [--rounds 5] [--n 3000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jinja2

import runbook.render.templar as templar

TEXTS = [
    "{{ app_dir }}/docker-compose-4gb.yml",
    "postgresql://{{ db_user }}:{{ db_password }}@{{ db_host }}:{{ db_port }}/{{ db_name }}",
    "{{ run.id | quote }} {{ run.status | quote }} {{ inventory_hostname | quote }}",
    "{{ (db_backup | default({})).path | default(backup_path) }}",
    "{{ app_workers * db_pool_size + db_reserved_connections }}",
    "deploy-4gb {{ run.status }} on {{ inventory_hostname }} ({{ app_image }}, run {{ run.id }})",
    "{{ ('DOCKER_HOST=' ~ (docker_host | quote) ~ ' ') if docker_host else '' }}docker info",
]
VARS = {
    "app_dir": "/opt/app", "db_user": "u", "db_password": "p", "db_host": "127.0.0.1", "db_port": 5432,
    "db_name": "d", "run": {"id": "r1", "status": "success"}, "backup_path": "/b", "app_workers": 4,
    "db_pool_size": 5, "db_reserved_connections": 3, "inventory_hostname": "h1", "app_image": "img:v1",
    "docker_host": "",
}  # fmt: skip


def per_render(rounds: int, n: int) -> float:
    t = templar.Templar()
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            scope = templar.LazyVars([(VARS, False)], t)
            for text in TEXTS:
                t.render(text, scope)
        best = min(best, time.process_time() - start)
    return best / n / len(TEXTS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=3000)
    a = ap.parse_args()
    sandboxed = per_render(a.rounds, a.n)
    sandbox_cls = templar.SandboxedEnvironment
    templar.SandboxedEnvironment = jinja2.Environment  # type: ignore[misc] - the reference only
    templar.ENV = templar._env()
    templar._cache.clear()
    try:
        plain = per_render(a.rounds, a.n)
    finally:
        templar.SandboxedEnvironment = sandbox_cls  # type: ignore[misc]
        templar.ENV = templar._env()
        templar._cache.clear()
    print("| environment | per render | relative |\n|---|---|---|")
    print(
        f"| jinja2.sandbox.SandboxedEnvironment (runbook) | {sandboxed * 1e6:.1f} us | {sandboxed / plain:.2f}x |"
    )
    print(f"| jinja2.Environment (reference, unsafe) | {plain * 1e6:.1f} us | 1.00x |")


if __name__ == "__main__":
    main()
