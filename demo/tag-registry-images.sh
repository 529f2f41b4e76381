#!/bin/sh
# Give the demo images (demo/build-images.sh builds them first) the names seed 001's compose file
# expects, ${REGISTRY}/web:${VERSION} and ${REGISTRY}/api:${VERSION}, as if pulled from the registry:
#
#   localhost/myorg/api:v1  localhost/myorg/web:v1   <- runbook-demo:v1
#   localhost/myorg/api:v2  localhost/myorg/web:v2   <- runbook-demo:v2
#   ...:broken  ...:unhealthy  ...:crash             <- the failure-injection variants
#
# `docker compose pull` then finds them present; a VERSION that was never tagged is looked up in the
# registry (localhost: nothing answers there, so the pull fails fast, on loopback only).
# Usage: demo/tag-registry-images.sh [REGISTRY]   (default localhost/myorg; uses $DOCKER_HOST)
set -eu
registry="${1:-localhost/myorg}"
for tag in v1 v2 broken unhealthy crash; do
    if ! docker image inspect runbook-demo:"$tag" >/dev/null 2>&1; then
        echo "tag-registry-images.sh: runbook-demo:$tag missing; run demo/build-images.sh first" >&2
        exit 1
    fi
    for svc in api web; do
        docker tag runbook-demo:"$tag" "$registry/$svc:$tag"
    done
done
echo "tagged $registry/{api,web}:{v1,v2,broken,unhealthy,crash}"
