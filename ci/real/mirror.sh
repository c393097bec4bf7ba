#!/usr/bin/env bash
# Packs the real programs ci/real/build.sh builds into a release mirror in the upstream layout, with the
# checksum files upstream publishes, as kimage's release catalog (src/release/catalog.yaml) expects them
# under `binaries.mirror` (which keeps the upstream URL paths). ci/vm/mirror.sh does the same from
# Debian's packages. Deterministic: sorted tars, mtime 0, uid/gid 0, gzip without name or time.
#
#   release/vV/bin/linux/amd64/{kube-apiserver,...,kubectl}{,.sha256}      (dl.k8s.io files, sidecar)
#   vV/kubernetes-{server,node}-linux-amd64.tar.gz + kubernetes/kubernetes/master/CHANGELOG/CHANGELOG-X.Y.md
#                                       (a "Downloads for vV" table with their sha512; no kubeadm inside)
#   etcd-io/etcd/releases/download/vV/etcd-vV-linux-amd64.tar.gz + SHA256SUMS
#   containerd/containerd/releases/download/vV/containerd-V-linux-amd64.tar.gz + .sha256sum
#   opencontainers/runc/releases/download/vV/runc.amd64 + runc.sha256sum
#   kubernetes-sigs/cri-tools/releases/download/vV/crictl-vV-linux-amd64.tar.gz + .sha256
#   containernetworking/plugins/releases/download/vV/cni-plugins-linux-amd64-vV.tgz + .sha256
#
# Programs: $KIMAGE_REAL_KUBERNETES, $KIMAGE_REAL_ETCD, $KIMAGE_REAL_RUNTIME, else `ci/real/build.sh
# kubernetes etcd runtime` (cached). Versions: the ones actually built (each set's `versions` file).
#
# NOTE: `kimage lock` takes a version's digest from its built-in catalog before reading any checksum file,
# and the catalog holds upstream's published digests for kimage's default versions (v1.35.0, v3.6.12,
# v2.2.4, v1.4.2, v1.9.1): our own builds of exactly those versions lock to upstream's digests and
# `kimage fetch` refuses them. --version-suffix SUF (e.g. -kimage.1) publishes every artifact under
# VERSION+SUF instead (a semver pre-release, which no catalog entry has), so that `kimage lock` reads the
# mirror's checksum files; the programs still report their real versions.
#
# Usage: ci/real/mirror.sh [--version-suffix SUF] DIR
# Prints the versions it packed as shell assignments on stdout (KUBERNETES_VERSION=... ETCD_VERSION=...
# CONTAINERD_VERSION=... RUNC_VERSION=... CNI_VERSION=... CRICTL_VERSION=...). The mirror is packed once
# per input in $KIMAGE_REAL_CACHE (default /var/cache/kimage-real) and copied (hard-linked where it can) to DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${KIMAGE_REAL_CACHE:-/var/cache/kimage-real}
# Bump when the layout changes: a mirror packed by another recipe is packed again.
RECIPE=1
suffix=
if [ "${1:-}" = --version-suffix ]; then suffix=${2:?--version-suffix needs a value, e.g. -kimage.1}; shift 2; fi
case $suffix in ''|-[0-9A-Za-z]*) ;; *) echo "real/mirror: a suffix starts with '-' (a pre-release)" >&2; exit 1 ;; esac
M=$(realpath -m "${1:?usage: mirror.sh [--version-suffix SUF] DIR}")

log() { echo "real/mirror: $*" >&2; }
die() { echo "real/mirror: $*" >&2; exit 1; }

if [ -z "${KIMAGE_REAL_KUBERNETES:-}" ] || [ -z "${KIMAGE_REAL_ETCD:-}" ] || [ -z "${KIMAGE_REAL_RUNTIME:-}" ]; then
  while IFS='=' read -r k v; do
    case $k in
      KIMAGE_REAL_KUBERNETES) : "${KIMAGE_REAL_KUBERNETES:=$v}" ;;
      KIMAGE_REAL_ETCD) : "${KIMAGE_REAL_ETCD:=$v}" ;;
      KIMAGE_REAL_RUNTIME) : "${KIMAGE_REAL_RUNTIME:=$v}" ;;
    esac
  done < <("$ROOT/ci/real/build.sh" kubernetes etcd runtime)
fi
K=$KIMAGE_REAL_KUBERNETES E=$KIMAGE_REAL_ETCD R=$KIMAGE_REAL_RUNTIME
for d in "$K" "$E" "$R"; do [ -f "$d/.complete" ] || die "$d is not a complete build (ci/real/build.sh)"; done

# The versions actually built, as each set's `versions` file says.
# (the first version each names: the server's for etcd, whose etcdctl/etcdutl may be a nearby patch)
first_version() { grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+' "$1" | head -n1; }
k8s=$(first_version "$K/versions")
etcd=$(first_version "$E/versions")
runtime_version() { awk -v c="$1" '$1 == c {print $3}' "$R/versions"; }
ctrd=$(runtime_version containerd) runc=$(runtime_version runc) cni=$(runtime_version cni-plugins)
crictl=$(runtime_version crictl)
for v in "$k8s" "$etcd" "$ctrd" "$runc" "$cni" "$crictl"; do
  [[ $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "unexpected version '$v' in a versions file"
done
k8s+=$suffix etcd+=$suffix ctrd+=$suffix runc+=$suffix cni+=$suffix crictl+=$suffix

key=$( { echo "recipe $RECIPE suffix '$suffix'"; sha256sum "$0" | cut -d' ' -f1; cat "$K/.complete" "$E/.complete" "$R/.complete"; } \
  | sha256sum | cut -c1-16)
C=$CACHE/mirror-$key
if [ -f "$C/.complete" ]; then
  log "cached in $C"
else
  t0=$(date +%s)
  rm -rf "$C"; mkdir -p "$C"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # A deterministic .tar.gz of the named entries of a directory (same bytes on every run).
  tgz() {
    local out=$1 dir=$2; shift 2
    find "$dir" -exec touch -h -d @0 {} +
    tar -C "$dir" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu -cf - "$@" | gzip -n -6 >"$out"
  }
  exe() { mkdir -p "$(dirname "$2")"; install -m 0755 "$1" "$2"; }

  # Kubernetes: each program with its .sha256 (the digest alone, as dl.k8s.io publishes it).
  d=$C/release/$k8s/bin/linux/amd64; mkdir -p "$d"
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    exe "$K/bin/$b" "$d/$b"
    sha256sum "$d/$b" | cut -d' ' -f1 >"$d/$b.sha256"
  done
  # ... and the server and node tarballs, whose sha512 upstream publishes in the CHANGELOG only.
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    exe "$K/bin/$b" "$work/k/kubernetes/server/bin/$b"
  done
  for b in kubelet kube-proxy kubectl; do exe "$K/bin/$b" "$work/k/kubernetes/node/bin/$b"; done
  mkdir -p "$C/$k8s"
  tgz "$C/$k8s/kubernetes-server-linux-amd64.tar.gz" "$work/k" kubernetes/server
  tgz "$C/$k8s/kubernetes-node-linux-amd64.tar.gz" "$work/k" kubernetes/node
  minor=${k8s#v}; minor=${minor%%-*}; minor=${minor%.*}
  d=$C/kubernetes/kubernetes/master/CHANGELOG; mkdir -p "$d"
  {
    printf '# %s\n\n## Downloads for %s\n\n### Server Binaries\n\nfilename | sha512 hash\n-------- | -----------\n' "$k8s" "$k8s"
    printf '[kubernetes-server-linux-amd64.tar.gz](https://dl.k8s.io/%s/kubernetes-server-linux-amd64.tar.gz) | %s\n' \
      "$k8s" "$(sha512sum "$C/$k8s/kubernetes-server-linux-amd64.tar.gz" | cut -d' ' -f1)"
    printf '\n### Node Binaries\n\nfilename | sha512 hash\n-------- | -----------\n'
    printf '[kubernetes-node-linux-amd64.tar.gz](https://dl.k8s.io/%s/kubernetes-node-linux-amd64.tar.gz) | %s\n' \
      "$k8s" "$(sha512sum "$C/$k8s/kubernetes-node-linux-amd64.tar.gz" | cut -d' ' -f1)"
  } >"$d/CHANGELOG-$minor.md"

  # etcd: etcd-vV-linux-amd64/{etcd,etcdctl,etcdutl} and SHA256SUMS.
  e=etcd-$etcd-linux-amd64
  for b in etcd etcdctl etcdutl; do exe "$E/bin/$b" "$work/e/$e/$b"; done
  d=$C/etcd-io/etcd/releases/download/$etcd; mkdir -p "$d"
  tgz "$d/$e.tar.gz" "$work/e" "$e"
  (cd "$d" && sha256sum "$e.tar.gz" >SHA256SUMS)

  # containerd: bin/{containerd,containerd-shim-runc-v2,ctr} and its .sha256sum (`DIGEST  NAME`).
  for b in containerd containerd-shim-runc-v2 ctr; do exe "$R/bin/$b" "$work/c/bin/$b"; done
  d=$C/containerd/containerd/releases/download/$ctrd; mkdir -p "$d"
  t=containerd-${ctrd#v}-linux-amd64.tar.gz
  tgz "$d/$t" "$work/c" bin
  (cd "$d" && sha256sum "$t" >"$t.sha256sum")

  # runc: runc.amd64 and runc.sha256sum.
  d=$C/opencontainers/runc/releases/download/$runc; mkdir -p "$d"
  exe "$R/bin/runc" "$d/runc.amd64"
  (cd "$d" && sha256sum runc.amd64 >runc.sha256sum)

  # crictl: crictl at the tarball's top and its .sha256 (the digest alone).
  exe "$R/bin/crictl" "$work/cr/crictl"
  d=$C/kubernetes-sigs/cri-tools/releases/download/$crictl; mkdir -p "$d"
  t=crictl-$crictl-linux-amd64.tar.gz
  tgz "$d/$t" "$work/cr" crictl
  (cd "$d" && sha256sum "$t" | cut -d' ' -f1 >"$t.sha256")

  # CNI plugins: ./PLUGIN entries (plus LICENSE and README.md, like upstream's) and the .sha256.
  mkdir -p "$work/cni"
  for f in "$R"/cni/*; do
    case ${f##*/} in LICENSE|README.md) install -m 0644 "$f" "$work/cni/" ;; *) exe "$f" "$work/cni/${f##*/}" ;; esac
  done
  d=$C/containernetworking/plugins/releases/download/$cni; mkdir -p "$d"
  t=cni-plugins-linux-amd64-$cni.tgz
  mapfile -t entries < <(cd "$work/cni" && printf './%s\n' * | sort)
  tgz "$d/$t" "$work/cni" "${entries[@]}"
  (cd "$d" && sha256sum "$t" >"$t.sha256")

  echo "KUBERNETES_VERSION=$k8s ETCD_VERSION=$etcd CONTAINERD_VERSION=$ctrd RUNC_VERSION=$runc CNI_VERSION=$cni CRICTL_VERSION=$crictl" \
    >"$C/.versions"
  echo "recipe $RECIPE: packed $(date -u +%FT%TZ) from $K $E $R" >"$C/.complete"
  log "packed in $(( $(date +%s) - t0 ))s -> $C"
fi

mkdir -p "$M"
# Hard links when DIR is on the cache's file system (the files are never written in place), else copies.
cp -alf "$C/." "$M/" 2>/dev/null || cp -af "$C/." "$M/"
rm -f "$M/.complete" "$M/.versions"
cat "$C/.versions"
