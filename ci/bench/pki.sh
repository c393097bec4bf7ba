#!/usr/bin/env bash
# Benchmark: generating the whole PKI of the seed-003 topology (3 stacked control planes, 3 workers,
# LB endpoint k8s-master-lb = 192.168.1.34:6443, service CIDR 10.96.0.0/16) with kimage versus the seeds'
# cfssl + openssl + kubectl workflow (cfssl-seed-pki.sh), on the same machine in the same run, with
# hyperfine, for ECDSA P-256 and RSA-2048. Also times a rerun with an unchanged profile.
# Targets: >= 50x faster than cfssl at ECDSA, >= 2x at RSA-2048.
#
# Usage: ci/bench/pki.sh            (RUNS=N to change the number of runs, default 5)
# KIMAGE overrides the kimage binary under test (default: a release build of this tree).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/ci/bench"
runs=${RUNS:-5}
for tool in hyperfine cfssl cfssljson openssl kubectl; do
  command -v "$tool" >/dev/null || { echo "ci/bench/pki.sh needs $tool" >&2; exit 1; }
done
cargo build --quiet --release --bin kimage --manifest-path "$root/Cargo.toml"
kimage=${KIMAGE:-"${CARGO_TARGET_DIR:-$root/target}/release/kimage"}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$root/profiles/003-stacked-ha-ipvs.yaml" "$work/ecdsa.yaml"
sed 's/^nodes:/pki:\n  algorithm: rsa-2048\nnodes:/' "$root/profiles/003-stacked-ha-ipvs.yaml" > "$work/rsa.yaml"
grep -q 'algorithm: rsa-2048' "$work/rsa.yaml"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "kimage: $kimage"

bench() { # name algo-kimage cfssl-algo cfssl-size
  hyperfine --style basic --runs "$runs" --warmup 1 \
    --export-json "$work/$1.json" \
    --prepare "rm -rf '$work/state-$1'" -n "kimage pki ($1)" \
      "'$kimage' pki --profile '$work/$1.yaml' --state '$work/state-$1'" \
    --prepare "rm -rf '$work/cfssl-$1'" -n "cfssl workflow ($1)" \
      "bash '$here/cfssl-seed-pki.sh' '$work/cfssl-$1' $2 $3"
  python3 - "$work/$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
k, c = r[0]["mean"], r[1]["mean"]
print(f"RESULT {r[0]['command']}: {k*1000:.1f} ms, {r[1]['command']}: {c*1000:.1f} ms, kimage is {c/k:.1f}x faster")
PY
}

bench ecdsa ecdsa 256
bench rsa rsa 2048

# A rerun with an unchanged profile: read, verify every key against its certificate, write nothing.
"$kimage" pki --profile "$work/rsa.yaml" --state "$work/state-rerun" >/dev/null
hyperfine --style basic --runs "$runs" --warmup 1 -n "kimage pki rerun, unchanged (rsa)" \
  "'$kimage' pki --profile '$work/rsa.yaml' --state '$work/state-rerun'"
