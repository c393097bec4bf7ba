#!/usr/bin/env bash
# Wall time of the netns suite (tests/netns_etcd.rs, tests/netns_lb.rs) as CI runs it: release build,
# the test harness's default parallelism, as root. Prints each test's own report ([netns] lines: steps,
# failover times) and the total.
#
#   usage: ci/bench/netns.sh [RUNS]   (results on stdout and in $KIMAGE_BENCH_OUT, default
#          target/bench/netns.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-1}
out=${KIMAGE_BENCH_OUT:-target/bench/netns.md}
mkdir -p "$(dirname "$out")"
cargo test --release --locked --test netns_etcd --test netns_lb --no-run
{
  echo "# netns suite: $(nproc) CPUs, $(etcd --version | head -1), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
  for i in $(seq "$runs"); do
    start=$(date +%s%N)
    cargo test --release --locked --test netns_etcd --test netns_lb -- --nocapture 2>&1 |
      grep -E '^\[netns\]|^  - \[|failed as expected|^test result'
    end=$(date +%s%N)
    echo "run $i: netns suite total $(((end - start) / 1000000)) ms"
  done
} | tee "$out"
