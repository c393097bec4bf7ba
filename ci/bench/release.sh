#!/usr/bin/env bash
# Benchmark of `kimage fetch` (issue 4): download ~400 MB of real Go binaries from a local HTTP server
# (python3 -m http.server on 127.0.0.1) into the content-addressed cache, against curl fetching the same
# files one after another; and the cost of verification: kimage's streaming sha256 vs sha256sum on the
# same bytes, and a fully cached `kimage fetch` (which re-hashes every entry).
#
# Usage: ci/bench/release.sh [RUNS]      (needs hyperfine, curl, python3, jq, sha256sum)
# The digest-only run uses the ignored driver test tests/release_bench.rs (kimage's own sha256 code).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
for t in hyperfine curl python3 jq sha256sum; do
  command -v "$t" >/dev/null || { echo "release.sh: needs $t" >&2; exit 1; }
done

work=$(mktemp -d /tmp/kimage-bench-release.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# ~400 MB of real binaries: kubectl 1.27-1.33 (Google Cloud SDK), etcd and etcdctl (Debian).
srv="$work/srv/bench"
mkdir -p "$srv"
files=()
for f in /usr/lib/google-cloud-sdk/bin/kubectl.1.* /usr/bin/etcd /usr/bin/etcdctl; do
  [ -f "$f" ] || continue
  name=$(basename "$f")
  cp "$f" "$srv/$name"
  files+=("$name")
done
total=$(du -cb "$srv"/* | tail -1 | cut -f1)
echo "serving ${#files[@]} files, $total bytes"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/srv" "$port" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done

# A lock naming the files with their sha256 (from sha256sum).
lock="$work/bench.lock"
{
  echo 'version = 1'
  echo '[resolved-for]'
  echo 'arch = "amd64"'
  echo 'kubernetes-from = "files"'
  echo 'binaries = []'
  echo 'fingerprint = ""'
  echo '[resolved-for.versions]'
  for name in "${files[@]}"; do
    digest=$(sha256sum "$srv/$name" | cut -d' ' -f1)
    cat <<TOML
[[artifact]]
name = "$name"
kind = "bench"
version = "v0.0.0"
arch = "amd64"
url = "http://127.0.0.1:$port/bench/$name"
algorithm = "sha256"
digest = "$digest"
source = "sha256sum"
format = "file"
[[artifact.member]]
binary = "$name"
install = "/usr/local/bin/$name"
mode = "0755"
TOML
  done
} >"$lock"

cargo build --release --quiet
fetch() { echo "./target/release/kimage fetch $*"; }
digest_cmd=$(
  driver=$(cargo test --release --test release_bench --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.executable != null and .target.name == "release_bench") | .executable' | tail -1)
  echo "$driver --ignored --exact bench_digest --test-threads 1 -q")

cache="$work/cache"
out="$work/curl"
urls=""
for name in "${files[@]}"; do urls+=" http://127.0.0.1:$port/bench/$name"; done

echo "== download: kimage fetch (parallel / one at a time) vs curl in sequence"
hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$work/download.md" \
  --prepare "rm -rf '$cache'" -n "kimage fetch -j 4" "$(fetch --lock "$lock" --cache "$cache" -j 4 --quiet)" \
  --prepare "rm -rf '$cache'" -n "kimage fetch -j 1" "$(fetch --lock "$lock" --cache "$cache" -j 1 --quiet)" \
  --prepare "rm -rf '$out' && mkdir -p '$out'" -n "curl (sequential)" \
  "for u in $urls; do curl -fsS -o '$out'/\$(basename \$u) \$u; done"

# Warm cache for the verification runs.
eval "$(fetch --lock "$lock" --cache "$cache" -j 4 --quiet)" >/dev/null
blobs=$(printf '%s:' "$cache"/blobs/sha256/*)
blobs=${blobs%:}
echo "== verification: kimage sha256 vs sha256sum on the same $total bytes; cached fetch (re-hashes all)"
hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$work/verify.md" \
  -n "kimage sha256 (streaming, 1 MiB reads)" "KIMAGE_BENCH_FILES='$blobs' $digest_cmd" \
  -n "sha256sum" "sha256sum $(echo "$blobs" | tr ':' ' ')" \
  -n "kimage fetch, all cached (-j 4)" "$(fetch --lock "$lock" --cache "$cache" -j 4 --quiet)" \
  -n "kimage fetch, all cached (-j 1)" "$(fetch --lock "$lock" --cache "$cache" -j 1 --quiet)"

echo
cat "$work/download.md"
echo
cat "$work/verify.md"
echo "total bytes: $total"
