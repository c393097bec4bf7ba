#!/usr/bin/env bash
# Proves a release mirror from ci/real/mirror.sh serves kimage: writes a quickstart profile pinned to the
# mirror's versions (binaries.mirror on a local `python3 -m http.server`), then `kimage lock` (reads the
# checksum files through the mirror) and `kimage fetch` (downloads and verifies every artifact).
# Usage: ci/real/mirror-check.sh WORKDIR [files|tarballs]
# Env: KIMAGE (default target/release/kimage), PORT (default 18730), SUFFIX (default -kimage.1: see
# mirror.sh's note on the built-in catalog; empty packs the real version names, which `kimage lock
# --mirror-checksums` then pins by the mirror's checksum files instead of the catalog's upstream digests).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(realpath -m "${1:?usage: mirror-check.sh WORKDIR [files|tarballs]}")
FROM=${2:-files}
KIMAGE=$(realpath "${KIMAGE:-$ROOT/target/release/kimage}")
PORT=${PORT:-18730}
SUFFIX=${SUFFIX--kimage.1}
rm -rf "$W"; mkdir -p "$W"
versions=$("$ROOT/ci/real/mirror.sh" ${SUFFIX:+--version-suffix "$SUFFIX"} "$W/mirror")
eval "$versions"
"$KIMAGE" init --template quickstart "$W/cluster.yaml" >/dev/null
python3 - "$W/cluster.yaml" "$PORT" "$FROM" "$KUBERNETES_VERSION" "$ETCD_VERSION" "$CONTAINERD_VERSION" \
  "$RUNC_VERSION" "$CRICTL_VERSION" "$CNI_VERSION" <<'PY'
import sys
p, port, frm, k8s, etcd, ctrd, runc, crictl, cni = sys.argv[1:]
s = open(p).read()
for old, new in [("  version: v1.35.0\n", f"  version: {k8s}\n"), ("  version: v3.6.12\n", f"  version: {etcd}\n"),
                 ("binaries:\n  source: fetch-at-boot\n",
                  f"containerRuntime:\n  containerd: {ctrd}\n  runc: {runc}\n  crictl: {crictl}\n  cniPlugins: {cni}\n"
                  f"binaries:\n  source: embed\n  kubernetesFrom: {frm}\n  mirror: http://127.0.0.1:{port}\n")]:
    assert old in s, f"the quickstart template has no {old!r}"
    s = s.replace(old, new)
open(p, "w").write(s)
PY
(cd "$W/mirror" && exec python3 -m http.server --bind 127.0.0.1 "$PORT" >"$W/http.log" 2>&1) &
srv=$!
trap 'kill "$srv"' EXIT
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break; sleep 0.1; done
export KIMAGE_CACHE=$W/cache
if [ -n "$SUFFIX" ]; then "$KIMAGE" lock -p "$W/cluster.yaml"; else "$KIMAGE" lock --mirror-checksums -p "$W/cluster.yaml"; fi
"$KIMAGE" fetch -p "$W/cluster.yaml"
echo "mirror-check: kimage lock and fetch passed against $versions ($FROM)"
