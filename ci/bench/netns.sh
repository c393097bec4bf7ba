#!/usr/bin/env bash
# Wall time of the netns suite (tests/netns_etcd.rs, tests/netns_lb.rs, tests/netns_control_plane.rs) as
# CI runs it (the real programs from ci/real/build.sh, which this runs first): release build,
# the test harness's default parallelism, as root. Prints each test's own report ([netns] lines: steps,
# failover times) and the total; the full output of every run goes to the .log beside the results.
#
#   usage: ci/bench/netns.sh [RUNS]   (results on stdout and in $KIMAGE_BENCH_OUT, default
#          target/bench/netns.md; exit status 1 if any run failed)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-1}
out=${KIMAGE_BENCH_OUT:-target/bench/netns.md}
log=${out%.md}.log
mkdir -p "$(dirname "$out")"
: >"$log"
while IFS= read -r line; do export "${line?}"; done < <(ci/real/build.sh)
tests=(--test netns_etcd --test netns_lb --test netns_control_plane)
cargo test --release --locked "${tests[@]}" --no-run
{
  echo "# netns suite: $(nproc) CPUs, etcd $("$KIMAGE_REAL_ETCD/bin/etcd" --version | head -1 | cut -d' ' -f3), $("$KIMAGE_REAL_KUBERNETES/bin/kube-apiserver" --version), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
  for i in $(seq "$runs"); do
    start=$(date +%s%N)
    status=ok
    cargo test --release --locked "${tests[@]}" -- --nocapture >"$log.run" 2>&1 || status=FAILED
    end=$(date +%s%N)
    cat "$log.run" >>"$log"
    grep -E '^\[netns\]|^  - \[|failed as expected|^test result|panicked' "$log.run" || true
    echo "run $i: netns suite total $(((end - start) / 1000000)) ms ($status)"
  done
  rm -f "$log.run"
} | tee "$out"
if grep -q '(FAILED)$' "$out"; then
  echo "ci/bench/netns.sh: a run failed, see $log" >&2
  exit 1
fi
