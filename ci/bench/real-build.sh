#!/usr/bin/env bash
# Cold and warm times of ci/real/build.sh (the real Kubernetes programs, etcd and kube-bench from their Go
# modules): the cold run starts from empty Go module and build caches and an empty binary cache (all in a
# temp dir, so the machine's own caches are untouched), as on a fresh CI machine; the warm run repeats it
# with everything cached. Needs the Go module proxy.
#
#   usage: ci/bench/real-build.sh   (results on stdout and in $KIMAGE_BENCH_OUT, default
#          target/bench/real-build.md; the full log beside it)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${KIMAGE_BENCH_OUT:-target/bench/real-build.md}
log=${out%.md}.log
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d /var/tmp/kimage-real-bench.XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
export GOMODCACHE=$tmp/gomod GOCACHE=$tmp/gocache KIMAGE_REAL_CACHE=$tmp/real
run() { # LABEL
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -v ci/real/build.sh >>"$log" 2>"$log.err"
  t1=$(date +%s%N)
  cat "$log.err" >>"$log"
  echo "$1: $(((t1 - t0) / 1000000)) ms in all; peak RSS $(grep 'Maximum resident' "$log.err" | awk '{print $NF}') KiB (largest single process)"
  grep -E '^real/build: ' "$log.err" | sed 's/^/  /'
}
: >"$log"
{
  echo "# ci/real/build.sh: $(nproc) CPUs, $(go version | cut -d' ' -f3)"
  run "cold (empty Go caches)"
  run "warm (cached)"
  echo "Go caches after the cold run: module cache $(du -sh "$GOMODCACHE" | cut -f1), build cache $(du -sh "$GOCACHE" | cut -f1), binaries $(du -sh "$KIMAGE_REAL_CACHE" | cut -f1)"
} | tee "$out"
rm -f "$log.err"
