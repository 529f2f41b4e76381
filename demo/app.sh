#!/bin/sh
# runbook-demo: a tiny web app (busybox httpd) standing in for the API service of seed 002.
#
#   GET /health -> {"status":"healthy","version":"<APP_VERSION>","role":"<APP_ROLE>"}
#   GET /ping   -> ok  (used by the container's own healthcheck)
#
# Environment: APP_PORT (8000), APP_BIND (127.0.0.1), APP_VERSION (baked into the image),
# APP_ROLE (api | sidecar: sidecars only keep running, like the prometheus/grafana stand-ins),
# APP_FAULT (baked into the failure-injection images, see build-images.sh):
#   exit      refuse to start (exit 1)
#   unhealthy serve /health with status "unhealthy"
#   crash     become healthy, then die after APP_FAULT_DELAY seconds (exit 3)
#   oom       become healthy, then allocate memory until the container's limit OOM-kills it
set -u
PORT="${APP_PORT:-8000}"
BIND="${APP_BIND:-127.0.0.1}"
VERSION="${APP_VERSION:-dev}"
ROLE="${APP_ROLE:-api}"
FAULT="${APP_FAULT:-}"
DELAY="${APP_FAULT_DELAY:-3}"

child=""
stop() {
    [ -n "$child" ] && kill "$child" 2>/dev/null
    exit 0
}
trap stop TERM INT

if [ "$ROLE" = sidecar ]; then
    echo "runbook-demo $VERSION sidecar ${APP_NAME:-sidecar} running"
    while :; do sleep 3600 & child=$!; wait "$child"; done
fi

if [ "$FAULT" = exit ]; then
    echo "runbook-demo $VERSION: fatal: refusing to start (APP_FAULT=exit)" >&2
    exit 1
fi

status=healthy
[ "$FAULT" = unhealthy ] && status=unhealthy
mkdir -p /www
printf '{"status":"%s","version":"%s","role":"%s"}\n' "$status" "$VERSION" "$ROLE" > /www/health
echo ok > /www/ping

echo "runbook-demo $VERSION listening on $BIND:$PORT"
httpd -f -p "$BIND:$PORT" -h /www &
child=$!

case "$FAULT" in
    crash)
        sleep "$DELAY"
        echo "runbook-demo $VERSION: crashing (APP_FAULT=crash)" >&2
        kill "$child"
        exit 3
        ;;
    oom)
        sleep "$DELAY"
        echo "runbook-demo $VERSION: allocating memory until the limit is hit (APP_FAULT=oom)" >&2
        # tail keeps the whole "last line" of /dev/zero (which has no newline) in memory: it grows
        # until the memory cgroup's OOM killer stops it.
        tail /dev/zero
        kill "$child"
        exit 137
        ;;
esac
wait "$child"
