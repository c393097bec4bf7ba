#!/usr/bin/env bash
# Builds the real programs that judge kimage's output, from their Go modules as the Go module proxy serves
# them, with the `go` command only (no GitHub downloads, no container images, nothing of them committed):
#
#   kubernetes  kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#               (module k8s.io/kubernetes, at kimage's default Kubernetes version)
#   etcd        etcd etcdctl etcdutl (go.etcd.io/etcd/{server,etcdctl,etcdutl}/v3, kimage's default etcd)
#   kube-bench  kube-bench, plus its cfg/ copied from the module
#
# Usage: ci/real/build.sh [kubernetes|etcd|kube-bench]...   (default: all three)
# Prints, on stdout, one `KIMAGE_REAL_<SET>=DIR` line per set (DIR holds bin/ and, for kube-bench, cfg/;
# ci/test.sh exports them for the tests) and on stderr what each build cost. Binaries are cached by version under $KIMAGE_REAL_CACHE (default
# /var/cache/kimage-real), outside the work tree: a second run reuses them in well under a second.
#
# Versions: kimage's defaults (src/profile/mod.rs), or KIMAGE_REAL_K8S_VERSION / KIMAGE_REAL_ETCD_VERSION.
# If the proxy does not serve that exact patch release, the nearest patch of the same minor it serves is
# used, and the output says so.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${KIMAGE_REAL_CACHE:-/var/cache/kimage-real}
PROXY=${GOPROXY_URL:-https://proxy.golang.org}
KUBE_BENCH_VERSION=${KIMAGE_REAL_KUBE_BENCH_VERSION:-v0.16.0}
# Upstream's release settings (kubernetes hack/lib/golang.sh, etcd scripts/build-binary.sh).
GO_TAGS="selinux,notest,grpcnotrace"
# Bump when the build settings change: a cached set built with another recipe is rebuilt.
RECIPE=1
mkdir -p "$CACHE"

log() { echo "real/build: $*" >&2; }
die() { echo "real/build: $*" >&2; exit 1; }

# kimage's default version of a component, read from the one place it is defined.
default_version() {
  awk -v fn="fn $1()" '
    index($0, fn) { want = 1; next }
    want && match($0, /"v[0-9]+\.[0-9]+\.[0-9]+"/) { print substr($0, RSTART + 1, RLENGTH - 2); exit }
  ' "$ROOT/src/profile/mod.rs"
}

served() { curl -fsS -o /dev/null "$PROXY/$1/@v/$2.info" 2>/dev/null; }

# The pinned version if the proxy serves it, else the nearest served patch of the same minor release (the
# lower one on a tie). The proxy's list endpoint is incomplete, so patch numbers are probed one by one.
resolve() {
  local module=$1 want=$2 minor patch d candidate
  if served "$module" "$want"; then echo "$want"; return; fi
  minor=${want%.*} patch=${want##*.}
  for d in $(seq 1 30); do
    for candidate in $(( patch - d )) $(( patch + d )); do
      [ "$candidate" -ge 0 ] || continue
      if served "$module" "$minor.$candidate"; then
        log "NOTE: $module $want is not served by $PROXY; using the nearest served patch $minor.$candidate"
        echo "$minor.$candidate"
        return
      fi
    done
  done
  die "the Go module proxy serves no $minor.x of $module near $want"
}

# Time of a version's commit as the proxy records it (stamped as buildDate, so builds do not embed "now").
version_time() { curl -fsS "$PROXY/$1/@v/$2.info" | sed -n 's/.*"Time" *: *"\([^"]*\)".*/\1/p'; }
version_commit() { curl -fsS "$PROXY/$1/@v/$2.info" | sed -n 's/.*"Hash" *: *"\([^"]*\)".*/\1/p'; }

# A throwaway wrapper module: `go install m@v` refuses modules whose go.mod has replace lines.
new_wrapper() {
  local dir=$1 go_line=$2
  rm -rf "$dir"
  mkdir -p "$dir"
  printf 'module kimage.test/real\n\n%s\n' "$go_line" > "$dir/go.mod"
}

# Builds each "name=package" into $out/bin/name, one at a time (each big link wants about 2 GiB).
build_each() {
  local wrapper=$1 out=$2 ldflags=$3 cgo_default=$4; shift 4
  local spec name pkg cgo t0
  for spec in "$@"; do
    name=${spec%%=*} pkg=${spec#*=}
    cgo=$cgo_default
    [ "$name" = kubelet ] && cgo=1  # upstream links the kubelet with cgo
    t0=$(date +%s)
    (cd "$wrapper" && CGO_ENABLED=$cgo go build -p 2 -trimpath -tags "$GO_TAGS" \
        -ldflags "$ldflags" -o "$out/bin/$name" "$pkg")
    log "  $name: $(( $(date +%s) - t0 ))s"
  done
}

# Marks a set done only once every program is built, so an interrupted run is redone, not half reused.
finish() {
  local out=$1 label=$2 t0=$3
  echo "recipe $RECIPE: $label built $(date -u +%FT%TZ) with $(go env GOVERSION)" > "$out/.complete"
  log "$label: built in $(( $(date +%s) - t0 ))s -> $out"
}

cached() {
  if grep -qs "^recipe $RECIPE:" "$1/.complete"; then log "$2: cached in $1"; return 0; fi
  return 1
}

build_kubernetes() {
  local want version out wrapper gomod t0 major minor commit date ldflags staging
  want=${KIMAGE_REAL_K8S_VERSION:-$(default_version kubernetes_version)}
  out=$CACHE/kubernetes-$want
  echo "KIMAGE_REAL_KUBERNETES=$out"
  cached "$out" "kubernetes $want" && return 0
  version=$(resolve k8s.io/kubernetes "$want")
  t0=$(date +%s)
  rm -rf "$out"; mkdir -p "$out/bin"
  wrapper=$CACHE/work/kubernetes-$version
  gomod=$(curl -fsS "$PROXY/k8s.io/kubernetes/@v/$version.mod")
  # k8s.io/kubernetes requires every staging module at v0.0.0 and maps it to ./staging/src/...; those
  # replace lines do not apply to a dependent module, so map each to its published v0.<minor>.<patch>.
  staging=$(printf '%s\n' "$gomod" | sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p')
  [ -n "$staging" ] || die "no staging replace lines in k8s.io/kubernetes $version's go.mod"
  new_wrapper "$wrapper" "$(printf '%s\n' "$gomod" | grep -E '^(go|godebug) ')"
  {
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$version"
    for m in $staging; do printf '\t%s => %s v0%s\n' "$m" "$m" "${version#v1}"; done
    printf ')\n'
  } >> "$wrapper/go.mod"
  # Blank imports of the commands keep `go mod tidy` from dropping what the build needs.
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
      printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"
    done
    printf ')\n'
  } > "$wrapper/tools.go"
  local t1; t1=$(date +%s)
  (cd "$wrapper" && go mod tidy) || die "go mod tidy failed for k8s.io/kubernetes $version (wrapper: $wrapper)"
  log "kubernetes $version: modules resolved in $(( $(date +%s) - t1 ))s"
  major=${version#v}; major=${major%%.*}
  minor=${version#v*.}; minor=${minor%%.*}
  commit=$(version_commit k8s.io/kubernetes "$version")
  date=$(version_time k8s.io/kubernetes "$version")
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit=${commit:-unknown} -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  build_each "$wrapper" "$out" "$ldflags" 0 \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
    kube-proxy=k8s.io/kubernetes/cmd/kube-proxy \
    kubectl=k8s.io/kubernetes/cmd/kubectl \
    kubelet=k8s.io/kubernetes/cmd/kubelet
  "$out/bin/kube-apiserver" --version | grep -qx "Kubernetes $version" \
    || die "kube-apiserver --version does not say $version: $("$out/bin/kube-apiserver" --version)"
  echo "k8s.io/kubernetes $version (asked for $want)" > "$out/versions"
  finish "$out" "kubernetes $version" "$t0"
}

build_etcd() {
  local want version ctl utl out wrapper t0 ldflags
  want=${KIMAGE_REAL_ETCD_VERSION:-$(default_version etcd_version)}
  out=$CACHE/etcd-$want
  echo "KIMAGE_REAL_ETCD=$out"
  cached "$out" "etcd $want" && return 0
  # The three are separate modules and the proxy does not serve every patch of each (v3.6.12: the server
  # yes, etcdctl and etcdutl no); each takes its nearest served patch. The server is what runs the tests;
  # the tools then link its libraries (MVS picks the higher of the shared api/client/pkg versions).
  version=$(resolve go.etcd.io/etcd/server/v3 "$want")
  ctl=$(resolve go.etcd.io/etcd/etcdctl/v3 "$want")
  utl=$(resolve go.etcd.io/etcd/etcdutl/v3 "$want")
  t0=$(date +%s)
  rm -rf "$out"; mkdir -p "$out/bin"
  wrapper=$CACHE/work/etcd-$version
  new_wrapper "$wrapper" "go 1.25.0"
  printf 'require (\n\tgo.etcd.io/etcd/server/v3 %s\n\tgo.etcd.io/etcd/etcdctl/v3 %s\n\tgo.etcd.io/etcd/etcdutl/v3 %s\n)\n' \
    "$version" "$ctl" "$utl" >> "$wrapper/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "go.etcd.io/etcd/server/v3"\n\t_ "go.etcd.io/etcd/etcdctl/v3"\n\t_ "go.etcd.io/etcd/etcdutl/v3"\n)\n' \
    > "$wrapper/tools.go"
  (cd "$wrapper" && go mod tidy) || die "go mod tidy failed for etcd $version (wrapper: $wrapper)"
  # etcd stamps its commit into api/v3/version (upstream: scripts/build-binary.sh).
  ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$(version_commit go.etcd.io/etcd/server/v3 "$version" | cut -c1-9)"
  GO_TAGS="" build_each "$wrapper" "$out" "$ldflags" 0 \
    etcd=go.etcd.io/etcd/server/v3 etcdctl=go.etcd.io/etcd/etcdctl/v3 etcdutl=go.etcd.io/etcd/etcdutl/v3
  "$out/bin/etcd" --version | grep -q "etcd Version: ${version#v}" \
    || die "etcd --version does not say ${version#v}: $("$out/bin/etcd" --version)"
  printf 'go.etcd.io/etcd/server/v3 %s, etcdctl/v3 %s, etcdutl/v3 %s (asked for %s)\n' \
    "$version" "$ctl" "$utl" "$want" > "$out/versions"
  finish "$out" "etcd $version (etcdctl $ctl, etcdutl $utl)" "$t0"
}

build_kube_bench() {
  local version=$KUBE_BENCH_VERSION out wrapper t0 src
  out=$CACHE/kube-bench-$version
  echo "KIMAGE_REAL_KUBE_BENCH=$out"
  cached "$out" "kube-bench $version" && return 0
  t0=$(date +%s)
  rm -rf "$out"; mkdir -p "$out/bin"
  wrapper=$CACHE/work/kube-bench-$version
  new_wrapper "$wrapper" "go 1.25.0"
  printf 'require github.com/aquasecurity/kube-bench %s\n' "$version" >> "$wrapper/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/aquasecurity/kube-bench"\n' > "$wrapper/tools.go"
  (cd "$wrapper" && go mod tidy) || die "go mod tidy failed for kube-bench $version (wrapper: $wrapper)"
  GO_TAGS="" build_each "$wrapper" "$out" \
    "-s -w -X github.com/aquasecurity/kube-bench/cmd.KubeBenchVersion=$version" 0 \
    kube-bench=github.com/aquasecurity/kube-bench
  # The checks are YAML beside the code, not in the binary.
  src=$(cd "$wrapper" && go list -m -f '{{.Dir}}' github.com/aquasecurity/kube-bench)
  cp -r "$src/cfg" "$out/cfg"
  chmod -R u+w "$out/cfg"
  echo "github.com/aquasecurity/kube-bench $version" > "$out/versions"
  finish "$out" "kube-bench $version" "$t0"
}

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(kubernetes etcd kube-bench)
total=$(date +%s)
for s in "${sets[@]}"; do
  case $s in
    kubernetes) build_kubernetes ;;
    etcd) build_etcd ;;
    kube-bench) build_kube_bench ;;
    *) die "unknown set '$s' (kubernetes, etcd, kube-bench)" ;;
  esac
done
log "all done in $(( $(date +%s) - total ))s (go $(go env GOVERSION), cache $CACHE)"
