#!/bin/sh
# runbook-e02: stand-ins for seed 004's tagging API (api:8080) and document importer (importer:9090).
#
# One script, two modes. Started as the container's command it serves HTTP with busybox httpd on
# APP_BIND:APP_PORT; each request runs this same script as a CGI program. busybox httpd only runs
# programs under /cgi-bin/, so the routes live below  http://HOST:PORT/cgi-bin/app  (the runbook's
# api_prefix); every route seed 004 calls follows that prefix unchanged:
#
#   APP_ROLE=api (APP_VERSION e01-*: the release before E02, no tag routes; e02-*: the E02 API)
#     GET  /health                 {"status":"healthy","version":...,"role":"api","tags_enabled":...}
#     POST /admin/enable-tags      Bearer ADMIN_TOKEN -> {"status":"tags_enabled","endpoints":7}
#     POST /admin/disable-tags     Bearer ADMIN_TOKEN -> {"status":"tags_disabled"}
#     GET  /v1/documents?limit=1   200 with one document and its tags once enabled, else 404
#   APP_ROLE=importer
#     GET  /health                 {"status":"healthy","role":"importer","imports":"running"|"paused"}
#     POST /admin/pause            Bearer ADMIN_TOKEN -> {"status":"imports_paused"}
#     POST /admin/resume           Bearer ADMIN_TOKEN -> {"status":"imports_resumed","rate":"156 docs/sec"}
#   tag-cli --version              tag-cli v1.0.0 (the seed's CLI tool; only in e02 images)
#
# State (tags enabled, imports paused) lives in STATE_DIR (default /tmp/state): the importer's survives
# the API's redeploys when STATE_DIR is a volume. A wrong or missing token is a 401.
set -u
VERSION="${APP_VERSION:-dev}"
ROLE="${APP_ROLE:-api}"
STATE="${STATE_DIR:-/tmp/state}"

reply() {  # reply STATUS JSON
    printf 'Status: %s\r\nContent-Type: application/json\r\n\r\n%s\n' "$1" "$2"
    exit 0
}

authorized() {
    [ -n "${ADMIN_TOKEN:-}" ] && [ "${HTTP_AUTHORIZATION:-}" = "Bearer $ADMIN_TOKEN" ]
}

flag() {  # flag NAME -> true|false
    if [ -f "$STATE/$1" ]; then echo true; else echo false; fi
}

cgi() {
    route="${PATH_INFO:-/}"
    method="${REQUEST_METHOD:-GET}"
    case "$ROLE $method $route" in
        "api GET /health")
            reply "200 OK" "{\"status\":\"healthy\",\"version\":\"$VERSION\",\"role\":\"api\",\"tags_enabled\":$(flag tags_enabled)}" ;;
        "importer GET /health")
            imports=running
            [ -f "$STATE/imports_paused" ] && imports=paused
            reply "200 OK" "{\"status\":\"healthy\",\"version\":\"$VERSION\",\"role\":\"importer\",\"imports\":\"$imports\"}" ;;
    esac
    case "$VERSION" in e01-*) [ "$ROLE" = api ] && reply "404 Not Found" '{"error":"no such route"}' ;; esac
    case "$ROLE $method $route" in
        "api POST /admin/enable-tags"|"api POST /admin/disable-tags"|"importer POST /admin/pause"|"importer POST /admin/resume")
            authorized || reply "401 Unauthorized" '{"error":"invalid or missing admin token"}'
            mkdir -p "$STATE"
            case "$route" in
                */enable-tags) touch "$STATE/tags_enabled"; reply "200 OK" '{"status":"tags_enabled","endpoints":7}' ;;
                */disable-tags) rm -f "$STATE/tags_enabled"; reply "200 OK" '{"status":"tags_disabled"}' ;;
                */pause) touch "$STATE/imports_paused"; reply "200 OK" '{"status":"imports_paused"}' ;;
                */resume) rm -f "$STATE/imports_paused"; reply "200 OK" '{"status":"imports_resumed","rate":"156 docs/sec"}' ;;
            esac ;;
        "api GET /v1/documents")
            [ -f "$STATE/tags_enabled" ] || reply "404 Not Found" '{"error":"tag endpoints are disabled"}'
            reply "200 OK" '{"documents":[{"id":1,"title":"test_invoice.pdf","tags":{"domain_id":1,"category_id":1,"status_id":1}}],"limit":1}' ;;
    esac
    reply "404 Not Found" "{\"error\":\"no route $method $route\"}"
}

if [ -n "${GATEWAY_INTERFACE:-}${REQUEST_METHOD:-}" ]; then
    cgi
fi

if [ "$(basename "$0")" = tag-cli ]; then
    case "${1:-}" in
        --version) echo "tag-cli v1.0.0"; exit 0 ;;
        *) echo "usage: tag-cli --version" >&2; exit 2 ;;
    esac
fi

PORT="${APP_PORT:-8080}"
BIND="${APP_BIND:-127.0.0.1}"
mkdir -p /www/cgi-bin "$STATE"
ln -sf /bin/app /www/cgi-bin/app
echo ok > /www/ping
child=""
stop() {
    [ -n "$child" ] && kill "$child" 2>/dev/null
    exit 0
}
trap stop TERM INT
echo "runbook-e02 $ROLE $VERSION listening on $BIND:$PORT (routes under /cgi-bin/app)"
httpd -f -p "$BIND:$PORT" -h /www &
child=$!
wait "$child"
