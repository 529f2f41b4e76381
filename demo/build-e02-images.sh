#!/bin/sh
# Build the seed 004 (E02 go-live) stand-in images into the Docker engine at $DOCKER_HOST.
#
#   runbook-e02:e01-v0.9.0   the API release before E02 (no tag routes)
#   runbook-e02:e02-v1.0.0   the E02 API (tag routes, tag-cli) and the document importer (APP_ROLE=importer)
#
# Like build-images.sh: no registry, each image is a `docker import`ed rootfs holding busybox-static
# and demo/e02-app.sh. Idempotent: an image whose content digest matches is left alone (--force rebuilds).
# Usage: demo/build-e02-images.sh [--force] [--repo NAME]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=runbook-e02
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --repo) repo="$2"; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "build-e02-images.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

bb=""
for c in /bin/busybox /usr/bin/busybox; do
    [ -x "$c" ] && { bb=$c; break; }
done
if [ -z "$bb" ] || ldd "$bb" >/dev/null 2>&1; then
    echo "build-e02-images.sh: a static busybox is needed: apt-get install busybox-static" >&2
    exit 1
fi
command -v docker >/dev/null || { echo "build-e02-images.sh: docker CLI not found" >&2; exit 1; }

digest=$(cat "$bb" "$here/e02-app.sh" "$0" | sha256sum | cut -c1-16)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rootfs() {  # rootfs DIR WITH_CLI
    root="$1"
    mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc"
    chmod 1777 "$root/tmp"
    cp "$bb" "$root/bin/busybox"
    for applet in sh httpd wget sleep kill mkdir touch rm ln printf echo cat true false ls ps env basename; do
        ln -s busybox "$root/bin/$applet"
    done
    cp "$here/e02-app.sh" "$root/bin/app"
    chmod 0755 "$root/bin/app"
    [ "$2" = 1 ] && ln -s app "$root/bin/tag-cli"
    printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
    tar -C "$root" -cf "$root.tar" .
}

build() {  # build TAG WITH_CLI
    tag="$repo:$1"
    if [ "$force" = 0 ] && docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$tag" \
        2>/dev/null | grep -qx "RUNBOOK_DEMO_DIGEST=$digest"; then
        echo "$tag: up to date"
        return 0
    fi
    rootfs "$work/$1" "$2"
    docker import \
        -c "ENV APP_VERSION=$1" \
        -c "ENV RUNBOOK_DEMO_DIGEST=$digest" \
        -c 'ENV PATH=/bin' \
        -c 'CMD ["/bin/app"]' \
        "$work/$1.tar" "$tag" >/dev/null
    echo "$tag: built ($(docker image inspect --format '{{.Id}}' "$tag" | cut -c1-19))"
}

build e01-v0.9.0 0
build e02-v1.0.0 1
