#!/usr/bin/env bash
# `kimage build --all` at fleet sizes: wall time of the first build (PKI generated, every node written)
# and of a rebuild from the same state (nothing changes, nothing rewritten), plus peak RSS from GNU time.
# Profiles are generated here: 3 control-plane nodes, 2 haproxy+keepalived nodes with a VIP, N-5
# workers; binaries fetched at boot and layers served from a URL, so the numbers are kimage's own work
# (PKI, rendering, tar+gzip, user-data), not copying binaries.
#
#   usage: ci/bench/build.sh [SIZES...]   (default: 6 1000 10000; needs /usr/bin/time; results on stdout
#          and in $KIMAGE_BENCH_OUT, default target/bench/build.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(6 1000 10000)
out=${KIMAGE_BENCH_OUT:-target/bench/build.md}
[ -x /usr/bin/time ] || { echo "ci/bench/build.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
cargo build --release --locked
bin=$PWD/target/release/kimage
work=$(mktemp -d "${TMPDIR:-/tmp}/kimage-bench-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"

profile() { # N -> profile text
  local n=$1 i
  cat <<YAML
apiVersion: kimage/v1alpha1
kind: Cluster
name: bench
binaries: {source: fetch-at-boot}
kubernetes: {podCIDR: 10.128.0.0/9, serviceCIDR: 10.96.0.0/12}
controlPlane: {endpoint: 172.16.0.100:6443}
loadBalancer: {kind: haproxy, vip: 172.16.0.100}
network: {prefixLength: 16}
layers: {from: url, baseURL: "http://artifacts.example/cluster"}
nodes:
  - {name: cp-1, role: control-plane, address: 172.16.0.11}
  - {name: cp-2, role: control-plane, address: 172.16.0.12}
  - {name: cp-3, role: control-plane, address: 172.16.0.13}
  - {name: lb-1, role: load-balancer, address: 172.16.0.21}
  - {name: lb-2, role: load-balancer, address: 172.16.0.22}
YAML
  for ((i = 0; i < n - 5; i++)); do
    echo "  - {name: w-$i, role: worker, address: 172.16.$((1 + i / 250)).$((1 + i % 250))}"
  done
}

measure() { # label dir -> "label: X s, peak RSS Y MiB"
  local label=$1 dir=$2
  /usr/bin/time -f '%e %M' -o "$dir/time" "$bin" build --profile "$dir/cluster.yaml" --all >/dev/null 2>"$dir/err" ||
    { cat "$dir/err" >&2; exit 1; }
  read -r secs kib <"$dir/time"
  echo "  $label: ${secs} s, peak RSS $((kib / 1024)) MiB"
}

{
  echo "# kimage build --all: $(nproc) CPUs, $(git rev-parse --short HEAD)"
  for n in "${sizes[@]}"; do
    d=$work/n$n
    mkdir -p "$d"
    profile "$n" >"$d/cluster.yaml"
    echo "$n nodes:"
    measure "first build" "$d"
    measure "rebuild    " "$d"
    echo "  output: $(du -sh "$d/out" | cut -f1), $(find "$d/out" -type f | wc -l) files"
  done
} | tee "$out"
