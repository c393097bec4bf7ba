#!/usr/bin/env bash
# Fails when docs/ (profile, CLI and node-file references, man pages, shell completions) is stale: kimage
# regenerates every file in memory and compares it with docs/, exiting 1 with the list of stale files.
# On failure this also shows the diff. Fix: `cargo run --release -- docs`, then commit docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
if cargo run --release --locked --quiet -- docs --check --out docs; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r docs "$tmp/docs"
cargo run --release --locked --quiet -- docs --out "$tmp/docs" >/dev/null 2>&1 || true
echo "--- what regenerating docs/ would change (first 200 lines):" >&2
diff -ruN docs "$tmp/docs" | head -n 200 >&2 || true
exit 1
