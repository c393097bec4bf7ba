#!/usr/bin/env bash
# Refactoring check: every shipped profile (and the test fixtures with worker pools) built by two kimage
# binaries from the same PKI state must give byte-identical out/ trees (`diff -r`). Profiles that would
# download binaries at build time are built with `binaries.source: fetch-at-boot` (no network, no cache).
#
#   usage: ci/dev/compare-builds.sh OLD_KIMAGE NEW_KIMAGE
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
old=$1 new=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for src in "$ROOT"/profiles/*.yaml "$ROOT"/tests/fixtures/netns-control-plane.yaml; do
  name=$(basename "$src" .yaml)
  d=$tmp/$name
  mkdir -p "$d"
  cp "$src" "$d/cluster.yaml"
  grep -q '^binaries:' "$d/cluster.yaml" || printf 'binaries:\n  source: fetch-at-boot\n' >>"$d/cluster.yaml"
  export KIMAGE_CACHE=$d/no-cache
  "$old" build --profile "$d/cluster.yaml" --all --out "$d/out-old" >/dev/null 2>&1
  "$new" build --profile "$d/cluster.yaml" --all --out "$d/out-new" >/dev/null 2>&1
  # out/.kimage.lock is not an artifact (builds of this kimage leave it empty).
  if diff -r -x .kimage.lock "$d/out-old" "$d/out-new" >"$d/diff" 2>&1; then
    echo "$name: identical ($(find "$d/out-new" -type f | wc -l) files)"
  else
    echo "$name: DIFFERS"; head -20 "$d/diff"; status=1
  fi
done
exit $status
