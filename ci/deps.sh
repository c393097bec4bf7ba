#!/usr/bin/env bash
# Installs the Debian packages kimage's tests use as judges (real components check the output).
# Idempotent; installs in groups because one combined transaction can hit held-back upgrades.
set -euo pipefail
groups=(
  "openssl iproute2 etcd-server etcd-client haproxy nginx libnginx-mod-stream keepalived cloud-init golang-cfssl containerd"
  # The netns tests run kimage-etcd-setup.service's systemd-sysusers/systemd-tmpfiles and stop processes with kill;
  # kube-proxy (nftables mode) needs nft; a C compiler builds the kubelet (cgo) and a test stand-in.
  "systemd procps python3 nftables gcc libc6-dev"
  "dosfstools mtools genisoimage xorriso pigz hyperfine shellcheck time jq curl"
  "virtinst zsh fish groff-base man-db"
  # ci/real: runc links libseccomp (cgo, found with pkg-config); images are packed and pushed with skopeo
  # into Debian's docker-registry (ci/real/registry.sh starts one; tests/images.rs starts its own).
  "libseccomp-dev pkg-config skopeo docker-registry"
)
if [ "${KIMAGE_VM_TESTS:-0}" = 1 ]; then
  groups+=("mmdebstrap e2fsprogs")
  # Debian 12's qemu-system-x86 (7.2) conflicts with a newer qemu-utils from backports that some machines
  # carry; pin qemu-utils to the same release.
  if ! command -v qemu-system-x86_64 >/dev/null || ! qemu-img --version 2>/dev/null | grep -q 'version 7\.2'; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 'qemu-utils=1:7.2*' >/dev/null
  fi
fi
missing=()
for g in "${groups[@]}"; do
  for p in $g; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
done
# The Terraform examples are parsed by a real HCL2 parser (python-hcl2, from PyPI).
python3 -c 'import hcl2' 2>/dev/null || python3 -m pip install -q 'python-hcl2>=8,<9'
# The bootstrap manifests are checked against the v1.35 JSON schemas (kubernetes-validate, from PyPI).
python3 -c 'import kubernetes_validate' 2>/dev/null || python3 -m pip install -q kubernetes-validate
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
for g in "${groups[@]}"; do
  want=()
  for p in $g; do
    for m in "${missing[@]}"; do [ "$m" = "$p" ] && want+=("$p"); done
  done
  [ ${#want[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
done
# Package installs may start services with default configs; tests run their own instances.
for s in nginx haproxy keepalived etcd; do
  if command -v systemctl >/dev/null; then systemctl stop "$s" 2>/dev/null || true; fi
  pkill -x "$s" 2>/dev/null || true
done
