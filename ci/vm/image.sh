#!/usr/bin/env bash
# Builds the VM test image: minimal Debian bookworm with cloud-init and what a load-balancer node runs from
# the distro (haproxy, nginx, keepalived). Nothing kimage delivers is in it: no etcd, no containerd, no
# Kubernetes. Output: $OUT/base.qcow2, $OUT/vmlinuz, $OUT/initrd.img (cached by this script's hash).
set -euo pipefail
OUT=${1:?output dir}
mkdir -p "$OUT"
key=$(sha256sum "$0" | cut -c1-16)
if [ -f "$OUT/base.qcow2" ] && [ "$(cat "$OUT/key" 2>/dev/null)" = "$key" ]; then
  echo "image: cached ($OUT)"
  exit 0
fi
start=$(date +%s)
rm -rf "$OUT/rootfs" "$OUT/base.qcow2"
pkgs=systemd-sysv,dbus,udev,cloud-init,python3,iproute2,iputils-ping,ifupdown,isc-dhcp-client,ca-certificates
pkgs=$pkgs,linux-image-cloud-amd64,initramfs-tools,e2fsprogs,kmod,procps,curl,iptables,nftables,conntrack
pkgs=$pkgs,haproxy,nginx,libnginx-mod-stream,keepalived,dosfstools,ipset
mmdebstrap --variant=minbase --include="$pkgs" bookworm "$OUT/rootfs" http://deb.debian.org/debian >"$OUT/mmdebstrap.log" 2>&1 \
  || { tail -20 "$OUT/mmdebstrap.log"; exit 1; }
r=$OUT/rootfs
echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$r/etc/fstab"
: >"$r/etc/hostname"
: >"$r/etc/machine-id"
rm -f "$r/var/lib/dbus/machine-id"
# Distro services must not start with their default configs before kimage's are in place.
for s in haproxy nginx keepalived; do
  rm -f "$r/etc/systemd/system/multi-user.target.wants/$s.service"
done
printf 'datasource_list: [ NoCloud, None ]\n' >"$r/etc/cloud/cloud.cfg.d/90-kimage-test.cfg"
cp "$r"/boot/vmlinuz-* "$OUT/vmlinuz"
cp "$r"/boot/initrd.img-* "$OUT/initrd.img"
mkfs.ext4 -q -F -L kimgroot -d "$r" "$OUT/base.raw" 3G
qemu-img convert -O qcow2 "$OUT/base.raw" "$OUT/base.qcow2"
rm -rf "$OUT/base.raw" "$r"
echo "$key" >"$OUT/key"
echo "image: built in $(( $(date +%s) - start ))s ($(du -h "$OUT/base.qcow2" | cut -f1))"
