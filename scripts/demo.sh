#!/usr/bin/env bash
# The main job: builds cairn and demonstrates it on an embedded default made from Debian's
# busybox-static (no network): a union mount of two lower layers (a busybox rootfs and a layer
# that changes, adds and whites out files) with a writable upper, copy-up, whiteouts, a
# directory rename, a shell run inside the merged root, the same upper read back by the
# kernel's overlayfs; then the busybox rootfs as an image: import, tag, images, history,
# inspect, a read-only mount of the image, save/load, system df/check, rmi.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -q
CAIRN=$PWD/target/release/cairn
BUSYBOX=$(command -v busybox || echo /bin/busybox)
D=$(mktemp -d /tmp/cairn-demo.XXXXXX)
cleanup() {
  for m in "$D/mnt" "$D/kmnt"; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
  rm -rf "$D"
}
trap cleanup EXIT
mkdir -p "$D"/{base,app,upper,work,mnt,kmnt,kwork}

# Layer 1 (bottom): a busybox root filesystem.
mkdir -p "$D"/base/{bin,etc,tmp,var/log}
cp "$BUSYBOX" "$D/base/bin/busybox"
for a in sh ls cat echo mkdir rm mv id uname wc; do ln "$D/base/bin/busybox" "$D/base/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" > "$D/base/etc/passwd"
echo "base layer" > "$D/base/etc/motd"
echo "old log" > "$D/base/var/log/old.log"
# Layer 2 (top): changes motd, whites out the old log (overlay whiteout = char device 0:0).
mkdir -p "$D"/app/{etc,var/log,srv}
echo "app layer" > "$D/app/etc/motd"
mknod "$D/app/var/log/old.log" c 0 0
echo "served by cairn" > "$D/app/srv/index.html"

echo "== cairn mount --lower app:base --upper upper --work work mnt"
"$CAIRN" mount --lower "$D/app:$D/base" --upper "$D/upper" --work "$D/work" "$D/mnt"
grep " $D/mnt " /proc/mounts
echo "== merged view"
ls -l "$D/mnt" "$D/mnt/var/log"
echo "motd: $(cat "$D/mnt/etc/motd")"
echo "== a shell inside the merged root (chroot): copy-up, whiteout, rename"
chroot "$D/mnt" /bin/sh -c '
  echo "written in the container" >> /etc/motd
  rm /etc/passwd
  mv /srv /www
  mkdir -p /tmp/new && echo hi > /tmp/new/file
  uname -s; id -u; ls /
'
echo "== upper layer after the changes (overlay format: whiteouts, redirect xattr)"
ls -lR "$D/upper"
getfattr -d -m trusted.overlay "$D/upper/www" 2>/dev/null || true
"$CAIRN" umount "$D/mnt"
echo "== the same upper mounted by the kernel's overlayfs"
mount -t overlay overlay -o "lowerdir=$D/app:$D/base,upperdir=$D/upper,workdir=$D/kwork,redirect_dir=on" "$D/kmnt"
ls "$D/kmnt" "$D/kmnt/www"
echo "motd: $(cat "$D/kmnt/etc/motd" | tr '\n' ' ')"
umount "$D/kmnt"

echo "== images: the busybox rootfs becomes an image in a store (CAIRN_ROOT=$D/store)"
export CAIRN_ROOT=$D/store
tar -C "$D/base" -cf "$D/busybox.tar" .
"$CAIRN" import -c 'CMD ["/bin/sh"]' -c 'ENV DEMO=1' -m "busybox-static rootfs" "$D/busybox.tar" busybox:demo
"$CAIRN" tag busybox:demo localhost/busybox:v1
"$CAIRN" images
"$CAIRN" history busybox:demo
"$CAIRN" inspect --format 'Id={{.Id}} Cmd={{json .Config.Cmd}} Env={{json .Config.Env}}' busybox:demo
echo "== cairn mount busybox:demo (read-only view of the image)"
mkdir -p "$D/img"
"$CAIRN" mount busybox:demo "$D/img"
chroot "$D/img" /bin/sh -c 'echo "inside the image: $(ls /bin | wc -l) entries in /bin"'
"$CAIRN" umount "$D/img"
echo "== save, then load into a second store"
"$CAIRN" save -o "$D/busybox-image.tar" busybox:demo
tar -tf "$D/busybox-image.tar"
CAIRN_ROOT=$D/store2 "$CAIRN" load -i "$D/busybox-image.tar"
CAIRN_ROOT=$D/store2 "$CAIRN" images
"$CAIRN" system df
"$CAIRN" system check
"$CAIRN" rmi localhost/busybox:v1 busybox:demo
echo "== done"
