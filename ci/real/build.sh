#!/usr/bin/env bash
# Builds the real programs that judge kimage's output, from their Go modules as the Go module proxy serves
# them, with the `go` command only (no GitHub downloads, no container images, nothing of them committed):
#
#   kubernetes  kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#               (module k8s.io/kubernetes, at kimage's default Kubernetes version)
#   etcd        etcd etcdctl etcdutl (go.etcd.io/etcd/{server,etcdctl,etcdutl}/v3, kimage's default etcd)
#   kube-bench  kube-bench, plus its cfg/ copied from the module
#   runtime     containerd containerd-shim-runc-v2 ctr runc crictl (bin/) and the CNI plugins (cni/: every
#               Linux plugin of plugins/{main,ipam,meta}, with README.md and LICENSE), at kimage's defaults
#               (github.com/containerd/containerd/v2, github.com/opencontainers/runc with libseccomp (cgo,
#               static PIE: libseccomp-dev, pkg-config), github.com/containernetworking/plugins,
#               sigs.k8s.io/cri-tools: the proxy serves no v1.35.x of it, so crictl may be another minor)
#   addons      flanneld, flannel (the CNI plugin), coredns (bin/) at the tags of the images kimage's
#               manifests name (src/model/mod.rs). github.com/flannel-io/cni-plugin is used when the
#               proxy serves it; it serves none, so `flannel` is built from its predecessor,
#               github.com/containernetworking/plugins v0.9.1 plugins/meta/flannel (see `versions`)
#   testapps    pause and echo (bin/), our own test programs in ci/real/testapps, static; cached by the
#               hash of their source
# Each set's directory holds `versions` (what was built, and what was asked for) and `build-times`.
# ci/real/images.sh packs addons and testapps into OCI images, ci/real/mirror.sh packs kubernetes, etcd and
# runtime into a release mirror in the upstream layout.
#
# Usage: ci/real/build.sh [kubernetes|etcd|kube-bench|runtime|addons|testapps]...
#        (default: kubernetes etcd kube-bench, what ci/test.sh needs)
# Prints, on stdout, one `KIMAGE_REAL_<SET>=DIR` line per set (DIR holds bin/ and, for kube-bench, cfg/;
# ci/test.sh exports them for the tests) and on stderr what each build cost. Binaries are cached by version under $KIMAGE_REAL_CACHE (default
# /var/cache/kimage-real), outside the work tree: a second run reuses them in well under a second.
#
# Versions: kimage's defaults (src/profile/mod.rs, src/model/mod.rs), or KIMAGE_REAL_K8S_VERSION,
# KIMAGE_REAL_ETCD_VERSION, KIMAGE_REAL_{CONTAINERD,RUNC,CNI_PLUGINS,CRICTL,FLANNEL,FLANNEL_CNI,COREDNS}_VERSION.
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

# The tag of an image kimage's manifests name (`pub const NAME: &str = "REF"` in src/model/mod.rs, module
# `images`), without a `-suffix` (ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1 -> v1.8.0).
image_version() {
  sed -n "s/.*pub const $1: &str = \"[^\"]*:\(v[0-9][^\"-]*\).*/\1/p" "$ROOT/src/model/mod.rs" | head -n1
}

served() { curl -fsS -o /dev/null "$PROXY/$1/@v/$2.info" 2>/dev/null; }

# The pinned version if the proxy serves it, else the nearest served patch of the same minor release (the
# lower one on a tie). The proxy's list endpoint is incomplete, so patch numbers are probed one by one.
# With a third argument `any-minor`, a module of which no patch of that minor is served falls back to the
# newest release below it that the proxy's list names, else the oldest above it. Prints nothing if none.
nearest() {
  local module=$1 want=$2 any=${3:-} minor patch d candidate listed
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
  [ "$any" = any-minor ] || return 0
  listed=$(curl -fsS "$PROXY/$module/@v/list" 2>/dev/null | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' | sort -V) || true
  candidate=$(printf '%s\n%s\n' "$listed" "$want" | sort -uV | grep -B1 -x "$want" | grep -vx "$want" || true)
  [ -n "$candidate" ] || candidate=$(printf '%s\n%s\n' "$listed" "$want" | sort -uV | grep -A1 -x "$want" | grep -vx "$want" || true)
  if [ -n "$candidate" ] && served "$module" "$candidate"; then
    log "NOTE: $module serves no $minor.x near $want; using $candidate, the nearest release it lists"
    echo "$candidate"
  fi
}

resolve() {
  local v
  v=$(nearest "$@")
  [ -n "$v" ] || die "the Go module proxy serves no ${2%.*}.x of $1 near $2"
  echo "$v"
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
  local spec name pkg cgo t0 dir=${BUILD_DIR:-bin} extra
  # GO_BUILDFLAGS: more `go build` flags (e.g. -buildmode=pie); BUILD_DIR: bin/ unless said otherwise.
  read -ra extra <<<"${GO_BUILDFLAGS:-}"
  mkdir -p "$out/$dir"
  for spec in "$@"; do
    name=${spec%%=*} pkg=${spec#*=}
    cgo=$cgo_default
    [ "$name" = kubelet ] && cgo=1  # upstream links the kubelet with cgo
    t0=$(date +%s)
    (cd "$wrapper" && CGO_ENABLED=$cgo go build -p 2 -trimpath "${extra[@]}" -tags "$GO_TAGS" \
        -ldflags "$ldflags" -o "$out/$dir/$name" "$pkg")
    log "  $name: $(( $(date +%s) - t0 ))s"
    echo "$name $(( $(date +%s) - t0 ))s" >> "$out/build-times"
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

# One wrapper module requiring `module version` with a blank import of each package named, tidied.
wrap() {
  local wrapper=$1 module=$2 version=$3 pkg; shift 3
  new_wrapper "$wrapper" "go 1.25.0"
  printf 'require %s %s\n' "$module" "$version" >> "$wrapper/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for pkg in "$@"; do printf '\t_ "%s"\n' "$pkg"; done
    printf ')\n'
  } > "$wrapper/tools.go"
  (cd "$wrapper" && go mod tidy) || die "go mod tidy failed for $module $version (wrapper: $wrapper)"
}

# The directory of a module in the wrapper's module cache.
module_dir() { (cd "$1" && go list -m -f '{{.Dir}}' "$2"); }

# containerd, containerd-shim-runc-v2, ctr (bin/), runc (bin/), crictl (bin/), the CNI plugins (cni/).
build_runtime() {
  local w_ctrd w_runc w_cni w_crictl ctrd runc cni crictl out t0 wrapper ldflags commit plugins p d
  w_ctrd=${KIMAGE_REAL_CONTAINERD_VERSION:-$(default_version containerd_version)}
  w_runc=${KIMAGE_REAL_RUNC_VERSION:-$(default_version runc_version)}
  w_cni=${KIMAGE_REAL_CNI_PLUGINS_VERSION:-$(default_version cni_plugins_version)}
  w_crictl=${KIMAGE_REAL_CRICTL_VERSION:-$(default_version crictl_version)}
  out=$CACHE/runtime-containerd-$w_ctrd-runc-$w_runc-cni-$w_cni-crictl-$w_crictl
  echo "KIMAGE_REAL_RUNTIME=$out"
  cached "$out" "runtime (containerd $w_ctrd, runc $w_runc, CNI plugins $w_cni, crictl $w_crictl)" && return 0
  ctrd=$(resolve github.com/containerd/containerd/v2 "$w_ctrd")
  runc=$(resolve github.com/opencontainers/runc "$w_runc")
  cni=$(resolve github.com/containernetworking/plugins "$w_cni")
  # The proxy serves cri-tools v1.34.0 and v1.37.0 only (none of v1.35.x): crictl may take another minor.
  crictl=$(resolve sigs.k8s.io/cri-tools "$w_crictl" any-minor)
  t0=$(date +%s)
  rm -rf "$out"; mkdir -p "$out/bin" "$out/cni"

  # containerd (Makefile, Makefile.linux): cgo, PIE, -s -w, tag urfave_cli_no_docs, version/revision
  # stamped; the shim without cgo, linked statically, tag no_grpc too.
  wrapper=$CACHE/work/containerd-$ctrd
  wrap "$wrapper" github.com/containerd/containerd/v2 "$ctrd" \
    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  commit=$(version_commit github.com/containerd/containerd/v2 "$ctrd")
  p=github.com/containerd/containerd/v2/version
  ldflags="-X $p.Version=$ctrd -X $p.Revision=${commit:-unknown} -X $p.Package=github.com/containerd/containerd/v2"
  GO_TAGS=urfave_cli_no_docs GO_BUILDFLAGS=-buildmode=pie build_each "$wrapper" "$out" "$ldflags -s -w" 1 \
    containerd=github.com/containerd/containerd/v2/cmd/containerd \
    ctr=github.com/containerd/containerd/v2/cmd/ctr
  GO_TAGS="urfave_cli_no_docs no_grpc" build_each "$wrapper" "$out" "$ldflags -extldflags -static -s -w" 0 \
    containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  "$out/bin/containerd" --version | grep -q " $ctrd " \
    || die "containerd --version does not say $ctrd: $("$out/bin/containerd" --version)"

  # runc (Makefile `static`, what its releases publish): cgo with libseccomp, static PIE, tags seccomp
  # urfave_cli_no_docs netgo osusergo. Its version comes from the module's VERSION file.
  pkg-config --exists libseccomp || die "runc needs libseccomp-dev and pkg-config (ci/deps.sh installs them)"
  wrapper=$CACHE/work/runc-$runc
  wrap "$wrapper" github.com/opencontainers/runc "$runc" github.com/opencontainers/runc
  commit=$(version_commit github.com/opencontainers/runc "$runc")
  GO_TAGS="seccomp urfave_cli_no_docs netgo osusergo" GO_BUILDFLAGS=-buildmode=pie build_each "$wrapper" "$out" \
    "${commit:+-X main.gitCommit=$commit }-linkmode external -extldflags -static-pie" 1 \
    runc=github.com/opencontainers/runc
  "$out/bin/runc" --version | grep -qx "runc version ${runc#v}" \
    || die "runc --version does not say ${runc#v}: $("$out/bin/runc" --version)"

  # CNI plugins (build_linux.sh + the release's ldflags): every Linux plugin under plugins/{main,ipam,meta},
  # static (no cgo), BuildVersion stamped. README.md and LICENSE go into the release tarball too.
  wrapper=$CACHE/work/cni-plugins-$cni
  new_wrapper "$wrapper" "go 1.25.0"
  printf 'require github.com/containernetworking/plugins %s\n' "$cni" >> "$wrapper/go.mod"
  (cd "$wrapper" && go mod download github.com/containernetworking/plugins)
  d=$(module_dir "$wrapper" github.com/containernetworking/plugins) || die "no module dir for the CNI plugins"
  plugins=()
  for p in "$d"/plugins/main/* "$d"/plugins/ipam/* "$d"/plugins/meta/*; do
    { [ -d "$p" ] && [ "${p##*/}" != windows ]; } || continue
    plugins+=("${p##*/}=github.com/containernetworking/plugins/${p#"$d"/}")
  done
  printf '//go:build tools\n\npackage tools\n\nimport (\n' > "$wrapper/tools.go"
  for p in "${plugins[@]}"; do printf '\t_ "%s"\n' "${p#*=}" >> "$wrapper/tools.go"; done
  printf ')\n' >> "$wrapper/tools.go"
  (cd "$wrapper" && go mod tidy) || die "go mod tidy failed for the CNI plugins $cni (wrapper: $wrapper)"
  BUILD_DIR=cni GO_TAGS="" build_each "$wrapper" "$out" \
    "-extldflags -static -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$cni" 0 \
    "${plugins[@]}"
  cp "$d/README.md" "$d/LICENSE" "$out/cni/"; chmod 0644 "$out/cni/README.md" "$out/cni/LICENSE"
  "$out/cni/bridge" 2>&1 </dev/null | grep -q "$cni" || die "the bridge plugin does not say $cni"

  # crictl (cri-tools Makefile): no cgo, -trimpath, version without its `v`.
  wrapper=$CACHE/work/cri-tools-$crictl
  wrap "$wrapper" sigs.k8s.io/cri-tools "$crictl" sigs.k8s.io/cri-tools/cmd/crictl
  GO_TAGS="" build_each "$wrapper" "$out" "-X sigs.k8s.io/cri-tools/pkg/version.Version=${crictl#v}" 0 \
    crictl=sigs.k8s.io/cri-tools/cmd/crictl
  "$out/bin/crictl" --version | grep -q "${crictl#v}" \
    || die "crictl --version does not say ${crictl#v}: $("$out/bin/crictl" --version)"

  {
    echo "containerd github.com/containerd/containerd/v2 $ctrd (asked for $w_ctrd)"
    echo "runc github.com/opencontainers/runc $runc (asked for $w_runc)"
    echo "cni-plugins github.com/containernetworking/plugins $cni (asked for $w_cni)"
    echo "crictl sigs.k8s.io/cri-tools $crictl (asked for $w_crictl)"
  } > "$out/versions"
  finish "$out" "runtime (containerd $ctrd, runc $runc, CNI plugins $cni, crictl $crictl)" "$t0"
}

# flanneld, flannel's CNI plugin `flannel`, coredns (bin/).
build_addons() {
  local w_flannel w_fcni w_coredns flannel fcni coredns out t0 wrapper commit fcni_from
  w_flannel=${KIMAGE_REAL_FLANNEL_VERSION:-$(image_version FLANNEL)}
  w_fcni=${KIMAGE_REAL_FLANNEL_CNI_VERSION:-$(image_version FLANNEL_CNI_PLUGIN)}
  w_coredns=${KIMAGE_REAL_COREDNS_VERSION:-$(image_version COREDNS)}
  out=$CACHE/addons-flannel-$w_flannel-cni-plugin-$w_fcni-coredns-$w_coredns
  echo "KIMAGE_REAL_ADDONS=$out"
  cached "$out" "addons (flannel $w_flannel, flannel CNI plugin $w_fcni, CoreDNS $w_coredns)" && return 0
  flannel=$(resolve github.com/flannel-io/flannel "$w_flannel")
  coredns=$(resolve github.com/coredns/coredns "$w_coredns")
  fcni=$(nearest github.com/flannel-io/cni-plugin "$w_fcni")
  t0=$(date +%s)
  rm -rf "$out"; mkdir -p "$out/bin"

  # flanneld (Makefile dist/flanneld): on amd64 with cgo (the UDP backend) linked statically, -s -w,
  # version stamped; netgo,osusergo keep the static binary off glibc's NSS (upstream links against musl).
  wrapper=$CACHE/work/flannel-$flannel
  wrap "$wrapper" github.com/flannel-io/flannel "$flannel" github.com/flannel-io/flannel
  GO_TAGS="netgo osusergo" build_each "$wrapper" "$out" \
    "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$flannel -extldflags -static" 1 \
    flanneld=github.com/flannel-io/flannel
  "$out/bin/flanneld" --version 2>&1 | grep -q "$flannel" \
    || die "flanneld --version does not say $flannel: $("$out/bin/flanneld" --version 2>&1)"

  # flannel's CNI plugin: github.com/flannel-io/cni-plugin (its Makefile: no cgo, static, main.Version,
  # main.Commit, main.Program). When the proxy serves none of it, the plugin it was forked from in 2021:
  # plugins/meta/flannel of github.com/containernetworking/plugins v0.9.1 (same binary name, same
  # subnet.env + delegate-to-bridge behaviour, CNI spec up to 0.4.0; the manifest's conflist is 0.3.1).
  if [ -n "$fcni" ]; then
    fcni_from="github.com/flannel-io/cni-plugin $fcni"
    wrapper=$CACHE/work/flannel-cni-plugin-$fcni
    wrap "$wrapper" github.com/flannel-io/cni-plugin "$fcni" github.com/flannel-io/cni-plugin
    commit=$(version_commit github.com/flannel-io/cni-plugin "$fcni")
    GO_TAGS="" build_each "$wrapper" "$out" \
      "-s -w -extldflags -static -X main.Version=$fcni -X main.Commit=${commit:-unknown} -X main.Program=flannel" 0 \
      flannel=github.com/flannel-io/cni-plugin
  else
    fcni_from="github.com/containernetworking/plugins v0.9.1 plugins/meta/flannel"
    log "NOTE: github.com/flannel-io/cni-plugin is not served by $PROXY (no version near $w_fcni);" \
      "building its predecessor, $fcni_from"
    wrapper=$CACHE/work/flannel-cni-plugin-cni-v0.9.1
    wrap "$wrapper" github.com/containernetworking/plugins v0.9.1 github.com/containernetworking/plugins/plugins/meta/flannel
    GO_TAGS="" build_each "$wrapper" "$out" \
      "-s -w -extldflags -static -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v0.9.1" 0 \
      flannel=github.com/containernetworking/plugins/plugins/meta/flannel
  fi

  # CoreDNS (Makefile): no cgo, -s -w, coremain.GitCommit stamped (upstream: `git describe`, the tag).
  wrapper=$CACHE/work/coredns-$coredns
  wrap "$wrapper" github.com/coredns/coredns "$coredns" github.com/coredns/coredns
  GO_TAGS="" build_each "$wrapper" "$out" "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns" 0 \
    coredns=github.com/coredns/coredns
  "$out/bin/coredns" -version | grep -q "CoreDNS-${coredns#v}" \
    || die "coredns -version does not say ${coredns#v}: $("$out/bin/coredns" -version)"

  {
    echo "flannel github.com/flannel-io/flannel $flannel (asked for $w_flannel)"
    echo "flannel-cni-plugin $fcni_from (asked for github.com/flannel-io/cni-plugin $w_fcni)"
    echo "coredns github.com/coredns/coredns $coredns (asked for $w_coredns)"
  } > "$out/versions"
  finish "$out" "addons (flannel $flannel, flannel CNI plugin: $fcni_from, CoreDNS $coredns)" "$t0"
}

# Our own test programs (ci/real/testapps, a Go module without dependencies): pause and echo, static.
# Cached by the content of their source.
build_testapps() {
  local src=$ROOT/ci/real/testapps key out t0
  key=$(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  out=$CACHE/testapps-$key
  echo "KIMAGE_REAL_TESTAPPS=$out"
  cached "$out" "testapps $key" && return 0
  t0=$(date +%s)
  rm -rf "$out"; mkdir -p "$out/bin"
  GO_TAGS="" build_each "$src" "$out" "-s -w" 0 pause=./pause echo=./echo
  echo "kimage.test/testapps (ci/real/testapps) source $key" > "$out/versions"
  finish "$out" "testapps $key" "$t0"
}

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(kubernetes etcd kube-bench)
total=$(date +%s)
for s in "${sets[@]}"; do
  case $s in
    kubernetes) build_kubernetes ;;
    etcd) build_etcd ;;
    kube-bench) build_kube_bench ;;
    runtime) build_runtime ;;
    addons) build_addons ;;
    testapps) build_testapps ;;
    *) die "unknown set '$s' (kubernetes, etcd, kube-bench, runtime, addons, testapps)" ;;
  esac
done
log "all done in $(( $(date +%s) - total ))s (go $(go env GOVERSION), cache $CACHE)"
