#!/usr/bin/env bash
# `kimage build --all` at fleet sizes: wall time of the first build (PKI generated, every node written)
# and of a rebuild from the same state (nothing changes, nothing rewritten), plus peak RSS from GNU time.
# Profiles are generated here: 3 control-plane nodes, 2 haproxy+keepalived nodes with a VIP, N-5
# workers; binaries fetched at boot, so the numbers are kimage's own work (PKI, rendering, tar+gzip,
# user-data), not copying binaries. Each size is built twice: layers served from a URL (`url`), and the
# default, layers in each node's NoCloud seed (`seed`: one seed.img per node), with the output's
# allocated size (du -s) next to its apparent size (du -s --apparent-size): seeds are written sparse.
#
#   usage: ci/bench/build.sh [SIZES...]   (default: 6 1000 10000; needs /usr/bin/time; results on stdout
#          and in $KIMAGE_BENCH_OUT, default target/bench/build.md; KIMAGE_BENCH_LAYERS="url seed"
#          chooses the layer sources; TMPDIR=/dev/shm puts the output on tmpfs; KIMAGE_BIN=path skips
#          the build and times that binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(6 1000 10000)
read -r -a modes <<<"${KIMAGE_BENCH_LAYERS:-url seed}"
out=${KIMAGE_BENCH_OUT:-target/bench/build.md}
[ -x /usr/bin/time ] || { echo "ci/bench/build.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
if [ -n "${KIMAGE_BIN:-}" ]; then # another build to compare with (e.g. main's)
  bin=$KIMAGE_BIN
else
  cargo build --release --locked
  bin=${CARGO_TARGET_DIR:-$PWD/target}/release/kimage
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kimage-bench-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"

profile() { # N MODE -> profile text
  local n=$1 mode=$2 i layers
  case $mode in
  url) layers='layers: {from: url, baseURL: "http://artifacts.example/cluster"}' ;;
  seed) layers='layers: {from: seed}' ;;
  *) echo "ci/bench/build.sh: unknown layer source $mode (url or seed)" >&2; exit 1 ;;
  esac
  cat <<YAML
apiVersion: kimage/v1alpha1
kind: Cluster
name: bench
binaries: {source: fetch-at-boot}
kubernetes: {podCIDR: 10.128.0.0/9, serviceCIDR: 10.96.0.0/12}
controlPlane: {endpoint: 172.16.0.100:6443}
loadBalancer: {kind: haproxy, vip: 172.16.0.100}
network: {prefixLength: 16}
$layers
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

measure() { # label dir -> "label: X s (user U s, sys S s), peak RSS Y MiB"
  local label=$1 dir=$2
  /usr/bin/time -f '%e %U %S %M' -o "$dir/time" "$bin" build --profile "$dir/cluster.yaml" --all >/dev/null 2>"$dir/err" ||
    { cat "$dir/err" >&2; exit 1; }
  read -r secs user sys kib <"$dir/time"
  echo "  $label: ${secs} s (user ${user} s, sys ${sys} s), peak RSS $((kib / 1024)) MiB"
}

seed_kib() { # out [du option] -> KiB of every seed.img below out
  find "$1" -name seed.img -print0 | du -ck ${2:+"$2"} --files0-from=- | tail -1 | cut -f1
}

mib() { # KiB -> MiB with one decimal
  awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'
}

sizes_of() { # du arguments... -> "A allocated, B apparent" (du -s counts allocated blocks; holes are free)
  local alloc apparent
  alloc=$(du -sk "$@" | awk '{ s += $1 } END { print s }')
  apparent=$(du -sk --apparent-size "$@" | awk '{ s += $1 } END { print s }')
  echo "$(mib "$alloc") allocated, $(mib "$apparent") apparent"
}

{
  echo "# kimage build --all: $(nproc) CPUs, $("$bin" --version), $(git rev-parse --short HEAD)"
  echo "output on $(df --output=fstype "$work" | tail -1) ($work)"
  for n in "${sizes[@]}"; do
    for mode in "${modes[@]}"; do
      d=$work/n$n-$mode
      mkdir -p "$d"
      profile "$n" "$mode" >"$d/cluster.yaml"
      echo "$n nodes, layers from $mode:"
      measure "first build" "$d"
      measure "rebuild    " "$d"
      echo "  output: $(sizes_of "$d/out"), $(find "$d/out" -type f | wc -l) files"
      seeds=$(find "$d/out" -name seed.img | wc -l)
      if [ "$seeds" -gt 0 ]; then
        echo "  seeds: $seeds, $(mib "$(seed_kib "$d/out")") allocated, $(mib "$(seed_kib "$d/out" --apparent-size)") apparent"
      fi
    done
  done
} | tee "$out"
