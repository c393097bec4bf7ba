#!/usr/bin/env bash
# Builds a release mirror in the upstream layout from Debian 12's own builds, so the VM test can pin
# versions that exist here: etcd (3.4, Debian's), containerd, runc and the CNI plugins. Each carries the
# checksum file its upstream publishes, which `kimage lock` reads through `binaries.mirror`.
# Usage: mirror.sh DIR   (prints the versions it packed as shell assignments on stdout)
set -euo pipefail
M=${1:?mirror dir}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$M"
cd "$work"
apt-get download etcd-server etcd-client containerd runc containernetworking-plugins >/dev/null 2>&1 || {
  apt-get update -qq && apt-get download etcd-server etcd-client containerd runc containernetworking-plugins >/dev/null
}
for d in ./*.deb; do dpkg-deb -x "$d" root; done
ver() { dpkg-deb -f ./"$1"_*.deb Version | sed -E 's/^[0-9]+://; s/[~+-].*//'; }
etcd=$(ver etcd-server); ctrd=$(ver containerd); runc=$(ver runc); cni=$(ver containernetworking-plugins)
fixed() { touch -h -d @0 "$@"; } # deterministic tarballs: same bytes on every run

# etcd: github.com/etcd-io/etcd/releases/download/vX/etcd-vX-linux-amd64.tar.gz + SHA256SUMS
e=etcd-v$etcd-linux-amd64; mkdir -p "$e"; cp root/usr/bin/etcd root/usr/bin/etcdctl "$e/"; fixed "$e" "$e"/*
d=$M/etcd-io/etcd/releases/download/v$etcd; mkdir -p "$d"
tar --sort=name --owner=0 --group=0 -czf "$d/$e.tar.gz" "$e"
(cd "$d" && sha256sum "$e.tar.gz" >SHA256SUMS)

# containerd: containerd-X-linux-amd64.tar.gz with bin/*, and its .sha256sum
mkdir -p bin; cp root/usr/bin/containerd root/usr/bin/containerd-shim-runc-v2 root/usr/bin/ctr bin/; fixed bin bin/*
d=$M/containerd/containerd/releases/download/v$ctrd; mkdir -p "$d"
t=containerd-$ctrd-linux-amd64.tar.gz
tar --sort=name --owner=0 --group=0 -czf "$d/$t" bin
(cd "$d" && sha256sum "$t" >"$t.sha256sum")

# runc: runc.amd64 + runc.sha256sum
d=$M/opencontainers/runc/releases/download/v$runc; mkdir -p "$d"
cp root/usr/sbin/runc "$d/runc.amd64"
(cd "$d" && sha256sum runc.amd64 >runc.sha256sum)

# CNI plugins: cni-plugins-linux-amd64-vX.tgz with ./PLUGIN entries + .sha256
mkdir -p cni; cp root/usr/lib/cni/* cni/; fixed cni cni/*
d=$M/containernetworking/plugins/releases/download/v$cni; mkdir -p "$d"
t=cni-plugins-linux-amd64-v$cni.tgz
(cd cni && tar --sort=name --owner=0 --group=0 -czf "$d/$t" ./*)
(cd "$d" && sha256sum "$t" >"$t.sha256")

echo "ETCD_VERSION=v$etcd CONTAINERD_VERSION=v$ctrd RUNC_VERSION=v$runc CNI_VERSION=v$cni"
