#!/usr/bin/env bash
# Docker graphdriver bench (issue 17): the same dockerd (Debian docker.io 20.10) with
# --storage-driver cairn (the `cairn graphdriver` plugin), overlay2 and fuse-overlayfs, each in a
# private mount namespace with a tmpfs over /run and all state in a temp dir. Prints a markdown
# table of median wall times over N rounds:
#   run     docker run --rm IMG true
#   build   docker build (classic builder) of a 10-step Dockerfile, no cache
#   commit  docker commit of a container that wrote 100 MB
# Usage (root): scripts/bench-graphdriver.sh [ROUNDS]   (CAIRN=path/to/cairn, default release)
set -euo pipefail
rounds=${1:-5}
cairn=${CAIRN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/cairn}
docker=/usr/bin/docker
work=$(mktemp -d /tmp/gdbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; done
  rm -rf "$work"
}
trap cleanup EXIT

# The image: static busybox, imported.
mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp"
cp /usr/bin/busybox "$work/rootfs/bin/"
for c in sh true dd echo; do ln -s busybox "$work/rootfs/bin/$c"; done
tar -C "$work/rootfs" --numeric-owner -cf "$work/bb.tar" .
mkdir -p "$work/ctx"
{ echo "FROM bb"; for i in $(seq 1 10); do echo "RUN echo step$i > /tmp/f$i"; done; } >"$work/ctx/Dockerfile"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }

start() { # driver dir → sets D
  local drv=$1 dir=$2 args
  mkdir -p "$dir/data" "$dir/exec"
  echo "{\"deprecated-key-path\": \"$dir/key.json\"}" >"$dir/daemon.json"  # not /etc/docker/key.json
  args="dockerd --config-file $dir/daemon.json --experimental --storage-driver $drv --data-root $dir/data --exec-root $dir/exec \
    --pidfile $dir/pid --host unix://$dir/docker.sock --bridge=none --iptables=false"
  if [ "$drv" = cairn ]; then
    unshare -m --propagation private sh -c "mount -t tmpfs tmpfs /run && mkdir -p /run/docker/plugins \
      && exec $cairn graphdriver --listen /run/docker/plugins/cairn.sock" 2>"$dir/plugin.log" &
    local pp=$!; pids+=("$pp")
    while [ ! -S "/proc/$pp/root/run/docker/plugins/cairn.sock" ]; do sleep 0.1; done
    nsenter -t "$pp" -m -- $args >"$dir/dockerd.log" 2>&1 &
  else
    unshare -m --propagation private sh -c "mount -t tmpfs tmpfs /run && exec $args" >"$dir/dockerd.log" 2>&1 &
  fi
  pids+=("$!")
  export DOCKER_HOST=unix://$dir/docker.sock DOCKER_BUILDKIT=0
  for _ in $(seq 300); do $docker version >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "dockerd --storage-driver $drv did not start" >&2; tail -5 "$dir/dockerd.log" >&2; return 1
}

stop() { local p=${pids[-1]}; kill "$p"; while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; }

echo "| storage driver | run --rm true (s) | build, 10 steps (s) | commit of 100 MB (s) |"
echo "|---|---|---|---|"
for drv in cairn overlay2 fuse-overlayfs; do
  dir=$work/$drv
  if ! start "$drv" "$dir"; then echo "| $drv | n/a | n/a | n/a |"; continue; fi
  $docker import "$work/bb.tar" bb >/dev/null
  $docker run --rm --network none bb true
  run=$(for _ in $(seq "$rounds"); do s=$(now); $docker run --rm --network none bb true; e=$(now); echo "$e - $s" | bc; done | median)
  build=$(for i in $(seq "$rounds"); do s=$(now); $docker build -q --no-cache --network none -t b$i "$work/ctx" >/dev/null; e=$(now); echo "$e - $s" | bc; done | median)
  commit=$(for i in $(seq "$rounds"); do
      $docker run --name c$i --network none bb dd if=/dev/urandom of=/tmp/big bs=1M count=100 2>/dev/null
      s=$(now); $docker commit c$i cimg$i >/dev/null; e=$(now); echo "$e - $s" | bc
      $docker rm c$i >/dev/null; $docker rmi cimg$i >/dev/null; done | median)
  echo "| $drv | $run | $build | $commit |"
  stop
  [ "$drv" = cairn ] && { p=${pids[-2]}; kill "$p"; while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; }
done
