#!/usr/bin/env bash
# Runs the VM test twice: the real build must pass every check, and a deliberately broken build (etcd-3 at
# an address outside the network, so the initial cluster names a member nobody can reach) must fail the
# etcd check. A harness that passed the broken build would be proving nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${KIMAGE_VM_WORK:-/var/tmp/kimage-vm-test}
start=$(date +%s)
"$ROOT/ci/vm/run.sh" "$W/good"
good=$(( $(date +%s) - start ))
echo "== broken build (expected to fail)"
if "$ROOT/ci/vm/run.sh" --broken "$W/broken"; then
  echo "vm test: the broken build passed the checks: the harness cannot detect a wrong initial cluster" >&2
  exit 1
fi
grep -q "etcd: not all 3 members healthy" "$W/broken/failures.txt" || {
  echo "vm test: the broken build failed, but not at the etcd check:" >&2
  cat "$W/broken/failures.txt" >&2
  exit 1
}
echo "vm test: good build passed in ${good}s; broken build failed as it must ($(head -1 "$W/broken/failures.txt"))"
echo "vm test: total $(( $(date +%s) - start ))s"
