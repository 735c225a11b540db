#!/usr/bin/env bash
# Podman with cairn vs fuse-overlayfs as containers/storage's mount_program, and native kernel
# overlay as the ceiling (as root): `podman run --rm IMG true`, a 10-step `podman build`, and a
# file-heavy workload inside a container. Each world has its own graphroot/runroot/config in a
# temp dir (the host's podman state is untouched); prints the median of RUNS runs per cell.
# Usage: scripts/bench-podman.sh [CAIRN_BINARY] (default target/release/cairn); RUNS=7.
set -euo pipefail
CAIRN=$(realpath "${1:-target/release/cairn}")
RUNS=${RUNS:-7}
TMP=$(mktemp -d /tmp/cairn-bench-podman.XXXXXX)
trap 'for w in "$TMP"/w-*; do [ -d "$w" ] && pm "$w" system reset -f >/dev/null 2>&1 || true; done; rm -rf "$TMP"' EXIT

# A busybox image with a few thousand small files to walk.
mkdir -p "$TMP/rootfs/bin" "$TMP/rootfs/data" "$TMP/rootfs/tmp" "$TMP/rootfs/etc"
cp "$(command -v busybox)" "$TMP/rootfs/bin/busybox"
for a in sh echo cat ls rm mkdir find true seq cp sort wc; do ln -s busybox "$TMP/rootfs/bin/$a"; done
for d in $(seq 1 20); do
  mkdir -p "$TMP/rootfs/data/d$d"
  for f in $(seq 1 100); do echo "file $d $f" > "$TMP/rootfs/data/d$d/f$f"; done
done
tar -C "$TMP/rootfs" -cf "$TMP/bb.tar" .
mkdir -p "$TMP/ctx"
{
  echo "FROM bb:1"
  for i in $(seq 1 10); do echo "RUN mkdir -p /s$i && echo $i > /s$i/f && rm -f /data/d$i/f1"; done
} > "$TMP/ctx/Dockerfile"

pm() { # pm WORLD ARGS...: podman with that world's configuration
  local w=$1; shift
  CONTAINERS_STORAGE_CONF=$w/storage.conf CONTAINERS_CONF=$w/containers.conf \
    XDG_CONFIG_HOME=$w/xdg podman "$@"
}

world() { # world NAME [MOUNT_PROGRAM]
  local w=$TMP/w-$1
  mkdir -p "$w/xdg"
  {
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/graph"\nrunroot = "%s/run"\n' "$w" "$w"
    if [ -n "${2:-}" ]; then printf '[storage.options.overlay]\nmount_program = "%s"\n' "$2"; fi
  } > "$w/storage.conf"
  printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "%s/tmp"\n' "$w" > "$w/containers.conf"
  pm "$w" import -q "$TMP/bb.tar" bb:1 >/dev/null
  echo "$w"
}

median() { sort -n | awk '{a[NR]=$1} END {printf "%.0f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

ms() { # ms CMD...: wall time of CMD in milliseconds
  local s e
  s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s%N)
  echo $(( (e - s) / 1000000 ))
}

cell() { # cell WORLD WORKLOAD -> median ms
  local w=$1 what=$2 i
  for i in $(seq 1 "$RUNS"); do
    case $what in
      run) ms pm "$w" run --rm --network none bb:1 true ;;
      build) ms pm "$w" build -q --no-cache --network none -t b:$i "$TMP/ctx" ;;
      files) ms pm "$w" run --rm --network none bb:1 sh -c \
        'find /data -type f | wc -l; cat /data/*/* | wc -c; cp -r /data /tmp/copy; rm -r /data/d1 /data/d2 /tmp/copy' ;;
    esac
  done | median
}

declare -A W=(
  [cairn]=$(world cairn "$CAIRN")
  [fuse-overlayfs]=$(world fo /usr/bin/fuse-overlayfs)
  [kernel]=$(world kernel)
)
printf '| workload | cairn | fuse-overlayfs 1.10 | kernel overlay |\n|---|---|---|---|\n'
for what in run build files; do
  row="| $what"
  for impl in cairn fuse-overlayfs kernel; do
    row="$row | $(cell "${W[$impl]}" "$what") ms"
  done
  echo "$row |"
done
