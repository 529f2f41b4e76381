#!/bin/sh
# Build the demo app images into the Docker engine at $DOCKER_HOST (or the default socket).
#
#   runbook-demo:v1, runbook-demo:v2   the two releases a deploy moves between
#   runbook-demo:broken                exits at start                 (compose up --wait fails)
#   runbook-demo:unhealthy             serves /health "unhealthy"      (the HTTP health check fails)
#   runbook-demo:crash                 healthy, then dies after 2 s    (a crashed container)
#   runbook-demo:oom                   healthy, then exceeds its memory limit (OOM-killed)
#
# No registry is needed: each image is a `docker import`ed rootfs holding busybox-static and
# demo/app.sh. Idempotent: an image whose content digest matches is left alone (--force rebuilds).
# Usage: demo/build-images.sh [--force] [--repo NAME]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=runbook-demo
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --repo) repo="$2"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "build-images.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

bb=""
for c in /bin/busybox /usr/bin/busybox; do
    [ -x "$c" ] && { bb=$c; break; }
done
if [ -z "$bb" ]; then
    echo "build-images.sh: busybox not found; install it: apt-get install busybox-static" >&2
    exit 1
fi
if ldd "$bb" >/dev/null 2>&1; then
    echo "build-images.sh: $bb is dynamically linked; install busybox-static (apt-get install busybox-static)" >&2
    exit 1
fi
command -v docker >/dev/null || { echo "build-images.sh: docker CLI not found" >&2; exit 1; }

digest=$(cat "$bb" "$here/app.sh" "$0" | sha256sum | cut -c1-16)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
for applet in sh httpd wget sleep tail kill mkdir printf echo cat true false ls ps env; do
    ln -s busybox "$root/bin/$applet"
done
cp "$here/app.sh" "$root/bin/app"
chmod 0755 "$root/bin/app"
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar -C "$root" -cf "$work/rootfs.tar" .

build() {  # build TAG VERSION FAULT
    tag="$repo:$1"
    if [ "$force" = 0 ] && docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$tag" \
        2>/dev/null | grep -qx "RUNBOOK_DEMO_DIGEST=$digest"; then
        echo "$tag: up to date"
        return 0
    fi
    docker import \
        -c "ENV APP_VERSION=$2" \
        -c "ENV APP_FAULT=$3" \
        -c "ENV APP_FAULT_DELAY=2" \
        -c "ENV RUNBOOK_DEMO_DIGEST=$digest" \
        -c 'ENV PATH=/bin' \
        -c 'CMD ["/bin/app"]' \
        "$work/rootfs.tar" "$tag" >/dev/null
    echo "$tag: built ($(docker image inspect --format '{{.Id}}' "$tag" | cut -c1-19))"
}

build v1 v1 ""
build v2 v2 ""
build broken v2-broken exit
build unhealthy v2-unhealthy unhealthy
build crash v2-crash crash
build oom v2-oom oom
