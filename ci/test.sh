#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, builds the real Kubernetes
# programs, etcd and kube-bench from their Go modules (ci/real/build.sh, cached by version), then runs
# formatting, lints and every test. Works offline apart from Debian's package mirror, crates.io and the Go
# module proxy. Prints what each stage cost.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stages=()
stage() { # NAME COMMAND...
  local t0 name=$1
  t0=$(date +%s)
  shift
  echo "== ci/test.sh: $name"
  "$@"
  stages+=("$name $(( $(date +%s) - t0 ))s")
  echo "== ci/test.sh: $name took $(( $(date +%s) - t0 ))s"
}
real_programs() {
  local list
  list=$(mktemp)
  # runtime: the pinned containerd judges the node's image import (tests/images.rs).
  ci/real/build.sh kubernetes etcd kube-bench runtime >"$list"
  while IFS= read -r line; do
    export "${line?}"
    echo "   $line"
  done <"$list"
  rm -f "$list"
}
# libFuzzer on the profile loader, validator and planner for a bounded time, from the committed corpus
# (new inputs go to a temp dir). cargo-fuzz needs a nightly toolchain: without one the stage says so
# (tests/out_integrity.rs's 3,000 in-process mutations run on stable either way).
fuzz() {
  if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "   SKIPPED: no nightly Rust toolchain on this machine; cargo-fuzz cannot run"
    return 0
  fi
  command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz --version 0.13.2
  local new
  new=$(mktemp -d)
  (cd fuzz && cargo +nightly fuzz run profile "$new" corpus/profile -- \
    -max_total_time="${KIMAGE_FUZZ_SECONDS:-60}" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -n 25)
  rm -rf "$new"
}
stage "deps (Debian packages, PyPI)" ci/deps.sh
stage "real programs from Go modules (ci/real/build.sh)" real_programs
stage "cargo fmt" cargo fmt --all -- --check
stage "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
stage "cargo test" cargo test --release --locked
stage "docs check" ci/check-docs.sh
stage "fuzz the profile loader (cargo-fuzz)" fuzz
if [ "${KIMAGE_VM_TESTS:-0}" = 1 ]; then
  export KIMAGE="$PWD/target/release/kimage"
  stage "VM test (ci/vm/test.sh)" ci/vm/test.sh
fi
echo "ci/test.sh: stages: $(IFS=';'; echo "${stages[*]}")"
echo "ci/test.sh: all checks passed in $(( $(date +%s) - start ))s"
