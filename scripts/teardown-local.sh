#!/usr/bin/env bash
# Undo scripts/setup-local.sh's running parts: bring the demo stack down, then stop exactly the
# processes setup-local.sh started (listed in .runbook/local/started), by PID, after checking that
# each PID is still the program it was. Services that were already running are left alone.
#   --purge   also drop the demo database and role, delete /opt/runbook-demo, the generated
#             settings (inventories/local/host_vars/localhost/generated.yml) and .runbook/local.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
STATE="$REPO/.runbook/local"
GEN="${RUNBOOK_LOCAL_GENERATED:-$REPO/inventories/local/host_vars/localhost/generated.yml}"
APP_DIR=/opt/runbook-demo
purge=0
[ "${1:-}" = --purge ] && purge=1

say() { printf 'teardown-local: %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "teardown-local: run me as root" >&2; exit 1; }

stop_pid() {  # stop_pid NAME PID SIGNAL: only if PID is still NAME
    local name=$1 pid=$2 sig=$3
    if ! kill -0 "$pid" 2>/dev/null; then say "$name (pid $pid) is not running"; return 0; fi
    local comm
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    case "$comm" in
        "$name"*) ;;
        *) say "pid $pid is now '$comm', not $name: leaving it alone"; return 0 ;;
    esac
    say "stopping $name (pid $pid)"
    kill "-$sig" "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    say "$name (pid $pid) did not stop in 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# The demo stack first (its containers would otherwise come back with dockerd: restart unless-stopped).
if [ -f "$APP_DIR/docker-compose-4gb.yml" ] && docker info >/dev/null 2>&1; then
    say "bringing the demo stack down"
    docker compose -f "$APP_DIR/docker-compose-4gb.yml" down --remove-orphans --timeout 10 || true
fi

started="$STATE/started"
if [ "$purge" = 1 ] && [ -f "$GEN" ]; then
    port=$(sed -n 's/^db_port: *//p' "$GEN" | head -n1)
    if [ -n "$port" ] && pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
        say "dropping database runbook_demo and role runbook_demo"
        runuser -u postgres -- psql -X -q -p "$port" -d postgres \
            -c "DROP DATABASE IF EXISTS runbook_demo" -c "DROP ROLE IF EXISTS runbook_demo" || true
    fi
fi

if [ -f "$started" ]; then
    # reverse order of starting
    tac "$started" | while read -r kind pid _rest; do
        case "$kind" in
            redis) stop_pid redis-server "$pid" TERM ;;
            postgres) stop_pid postgres "$pid" INT ;;   # SIGINT: PostgreSQL's fast shutdown
            dockerd)                                     # dockerd stops its containers and containerd
                stop_pid dockerd "$pid" TERM
                # the network-namespace bind mount dockerd leaves behind
                if ! pgrep -x dockerd >/dev/null && mountpoint -q /run/docker/netns/default; then
                    umount /run/docker/netns/default || true
                fi ;;
        esac
    done
    : > "$started"
else
    say "nothing recorded in $started: nothing to stop"
fi

if [ "$purge" = 1 ]; then
    say "removing $APP_DIR, /var/backups/runbook-demo, $GEN and $STATE"
    rm -rf -- "$APP_DIR" /var/backups/runbook-demo "$GEN" "$STATE"
fi
say "done"
