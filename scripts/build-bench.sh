#!/bin/bash
# `cairn build` against `podman build` on one 10-step Dockerfile with a 5000-file context:
# cold build, fully cached rebuild, rebuild after changing one copied file. Each figure is the
# median of REPS (default 3) runs, wall clock end to end. Root; busybox-static base image
# imported from a local tar into each tool's own temporary store (no network).
# Usage: scripts/build-bench.sh [CAIRN_BINARY]   (default target/release/cairn)
set -euo pipefail
CAIRN=${1:-$(dirname "$0")/../target/release/cairn}
CAIRN=$(realpath "$CAIRN")
REPS=${REPS:-3}
W=$(mktemp -d /var/tmp/build-bench.XXXXXX)
cleanup() {
    podman_cmd system reset -f >/dev/null 2>&1 || true
    grep -o " $W[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$W"
}
podman_cmd() {
    CONTAINERS_STORAGE_CONF=$W/storage.conf podman --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}
trap cleanup EXIT

# Base image: busybox-static.
mkdir -p "$W/rootfs/bin" "$W/rootfs/etc" "$W/rootfs/tmp"
cp /bin/busybox "$W/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln "$W/rootfs/bin/busybox" "$W/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$W/rootfs/etc/passwd"
echo 'root:x:0:' >"$W/rootfs/etc/group"
tar -C "$W/rootfs" -cf "$W/base.tar" .

# Context: 5000 files of 1 KiB in 50 directories, and the Dockerfile.
ctx=$W/ctx
for d in $(seq 1 50); do
    mkdir -p "$ctx/src/d$d"
    for f in $(seq 1 100); do head -c 1024 /dev/urandom >"$ctx/src/d$d/f$f"; done
done
echo v1 >"$ctx/app.conf"
cat >"$ctx/Dockerfile" <<'EOF'
FROM base:1
ENV APP=/app
WORKDIR /app
RUN mkdir -p /app/data && echo built > /app/data/stamp
COPY src /app/src
RUN find /app/src -type f | wc -l > /app/count
COPY app.conf /app/
RUN cat /app/app.conf > /app/conf.copy
LABEL bench=build
CMD ["cat", "/app/count"]
EOF
cat >"$W/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$W/podman"
runroot = "$W/podman-run"
EOF

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }

run_tool() {
    local name=$1 build=$2 cold cached touched
    cold=() cached=() touched=()
    for r in $(seq 1 "$REPS"); do
        echo v1 >"$ctx/app.conf"
        cold+=("$(t $build --no-cache)")
        cached+=("$(t $build)")
        echo "v$r$RANDOM" >"$ctx/app.conf"
        touched+=("$(t $build)")
    done
    printf '%-14s cold %6.2f s   cached %6.2f s   one file changed %6.2f s\n' "$name" \
        "$(printf '%s\n' "${cold[@]}" | median)" "$(printf '%s\n' "${cached[@]}" | median)" \
        "$(printf '%s\n' "${touched[@]}" | median)"
}

"$CAIRN" --root "$W/cairn" import "$W/base.tar" base:1 >/dev/null
cairn_build() { "$CAIRN" --root "$W/cairn" build -t bench:1 "$@" "$ctx"; }
run_tool cairn cairn_build

if command -v podman >/dev/null; then
    podman_cmd import "$W/base.tar" localhost/base:1 >/dev/null
    sed -i 's|^FROM base:1|FROM localhost/base:1|' "$ctx/Dockerfile"
    podman_build() {
        podman_cmd build --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
            -t bench:1 "$@" "$ctx"
    }
    run_tool "podman build" podman_build
fi
