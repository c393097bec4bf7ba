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
  ci/real/build.sh >"$list"
  while IFS= read -r line; do
    export "${line?}"
    echo "   $line"
  done <"$list"
  rm -f "$list"
}
stage "deps (Debian packages, PyPI)" ci/deps.sh
stage "real programs from Go modules (ci/real/build.sh)" real_programs
stage "cargo fmt" cargo fmt --all -- --check
stage "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
stage "cargo test" cargo test --release --locked
stage "docs check" ci/check-docs.sh
if [ "${KIMAGE_VM_TESTS:-0}" = 1 ]; then
  export KIMAGE="$PWD/target/release/kimage"
  stage "VM test (ci/vm/test.sh)" ci/vm/test.sh
fi
echo "ci/test.sh: stages: $(IFS=';'; echo "${stages[*]}")"
echo "ci/test.sh: all checks passed in $(( $(date +%s) - start ))s"
