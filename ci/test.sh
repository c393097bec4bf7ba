#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, then runs formatting, lints and
# every test. Works offline apart from Debian's package mirror and crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
ci/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --release --locked
ci/check-docs.sh
echo "ci/test.sh: all checks passed in $(( $(date +%s) - start ))s"
