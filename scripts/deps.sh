#!/usr/bin/env bash
# Installs what cairn's build, tests and demo need on a fresh Debian 12 machine (as root):
# the Rust toolchain is expected (rustup); Debian packages are installed when missing.
set -euo pipefail
pkgs=(fuse3 fuse-overlayfs attr busybox-static skopeo umoci runc docker-registry apache2-utils libseccomp-dev pkg-config podman buildah uidmap slirp4netns docker.io)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages ${missing[*]} (run as root to install them)" >&2
    exit 0
  fi
  echo "deps: installing ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps: cargo not found (install Rust with rustup)" >&2; exit 1; }
