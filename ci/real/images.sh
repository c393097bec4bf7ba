#!/usr/bin/env bash
# Packs the container images a kimage cluster runs, from the programs ci/real/build.sh builds (sets addons
# and testapps), as OCI images named as kimage's manifests name them, deterministically (same programs and
# packages in, same digests out: ci/real/ocipack.py writes sorted tars with mtime 0 and uid/gid 0, gzip
# without name or time, configs created at the epoch):
#
#   registry.k8s.io/pause:3.10.1                      /pause (ci/real/testapps), user 65535, like upstream's
#   registry.k8s.io/coredns/coredns:v1.13.1           /coredns, entrypoint /coredns (user 0: see below)
#   ghcr.io/flannel-io/flannel:v0.27.4                /opt/bin/flanneld, entrypoint; busybox in /bin (`cp`
#                                                     for the install-cni init container); Debian 12's
#                                                     iptables (nft and legacy) + its libraries and glibc,
#                                                     which flanneld runs for --ip-masq and its rules
#   ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1  /flannel (the CNI plugin); busybox in /bin (`cp`)
#   kimage.test/echo:v1                               /echo (ci/real/testapps) on :8080, user 65532
#
# The names and tags come from src/model/mod.rs (`images`) and src/profile/mod.rs (`sandbox_image`).
# CoreDNS runs as root here: upstream's image runs as 65532 with a file capability (setcap) on /coredns to
# bind :53, which a plain tar layer does not carry; the manifest adds NET_BIND_SERVICE, enough for root.
# busybox-static and iptables come from Debian's packages (`apt-get download`, kept in the cache: their
# versions are fixed from the first run on; delete $CACHE/debs-* to take newer ones).
#
# Usage: ci/real/images.sh [build]          builds (or reuses) the images; prints KIMAGE_REAL_IMAGES=DIR and
#                                           one `REF DIGEST` line per image on stdout
#        ci/real/images.sh push HOST:PORT   builds, then pushes each image to the registry at HOST:PORT
#                                           (plain HTTP) as HOST:PORT/<REF without its registry host>,
#                                           e.g. HOST:PORT/coredns/coredns:v1.13.1, what a containerd
#                                           registry mirror for registry.k8s.io asks for
# DIR (cached under $KIMAGE_REAL_CACHE, default /var/cache/kimage-real, keyed by everything that goes in):
#   DIR/layout     one OCI image layout holding every image (skopeo copy oci:DIR/layout:REF ...)
#   DIR/archives   each image as a one-image OCI layout tar (ctr -n k8s.io images import FILE)
#   DIR/images.txt REF DIGEST lines
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${KIMAGE_REAL_CACHE:-/var/cache/kimage-real}
# Bump when the packing changes: images packed by another recipe are packed again.
RECIPE=1
DEBS="busybox-static iptables libip4tc2 libip6tc2 libxtables12 libmnl0 libnftnl11 libnetfilter-conntrack3 libnfnetlink0 libc6"

log() { echo "real/images: $*" >&2; }
die() { echo "real/images: $*" >&2; exit 1; }

cmd=${1:-build}
case $cmd in
  build) ;;
  push) target=${2:?usage: images.sh push HOST:PORT} ;;
  *) die "usage: images.sh [build] | push HOST:PORT" ;;
esac

image_ref() { sed -n "s/.*pub const $1: &str = \"\([^\"]*\)\".*/\1/p" "$ROOT/src/model/mod.rs" | head -n1; }
PAUSE=$(sed -n '/fn sandbox_image()/,/}/s/.*"\(registry[^"]*\)".*/\1/p' "$ROOT/src/profile/mod.rs" | head -n1)
COREDNS=$(image_ref COREDNS)
FLANNEL=$(image_ref FLANNEL)
FLANNEL_CNI=$(image_ref FLANNEL_CNI_PLUGIN)
ECHO=kimage.test/echo:v1
for r in "$PAUSE" "$COREDNS" "$FLANNEL" "$FLANNEL_CNI"; do [ -n "$r" ] || die "an image name is missing in src/"; done

# The programs (cached: a second run costs well under a second).
sets=$("$ROOT/ci/real/build.sh" addons testapps)
ADDONS=$(sed -n 's/^KIMAGE_REAL_ADDONS=//p' <<<"$sets")
TESTAPPS=$(sed -n 's/^KIMAGE_REAL_TESTAPPS=//p' <<<"$sets")

# Debian's packages for the busybox and iptables layers, fetched once.
debs=$CACHE/debs-$RECIPE
if [ ! -f "$debs/.complete" ]; then
  rm -rf "$debs"; mkdir -p "$debs"
  # shellcheck disable=SC2086 # one word per package
  (cd "$debs" && { apt-get download $DEBS >/dev/null 2>&1 || { apt-get update -qq && apt-get download $DEBS >/dev/null; }; }) \
    || die "apt-get download $DEBS failed"
  ls "$debs" > "$debs/.complete"
fi

# Everything that goes in: the recipe, the packer, the programs, the packages, the names.
key=$( {
  echo "recipe $RECIPE $PAUSE $COREDNS $FLANNEL $FLANNEL_CNI $ECHO"
  sha256sum "$ROOT/ci/real/ocipack.py" "$0" | cut -d' ' -f1
  cat "$debs/.complete"
  (cd "$ADDONS/bin" && sha256sum coredns flannel flanneld)
  (cd "$TESTAPPS/bin" && sha256sum pause echo)
} | sha256sum | cut -c1-16)
OUT=$CACHE/images-$key

if [ -f "$OUT/.complete" ]; then
  log "cached in $OUT"
else
  t0=$(date +%s)
  rm -rf "$OUT"; mkdir -p "$OUT"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # A layer directory per part; modes set explicitly, ownership and times are the packer's.
  bin() { mkdir -p "$(dirname "$2")"; install -m 0755 "$1" "$2"; }
  bin "$TESTAPPS/bin/pause" "$work/pause/pause"
  bin "$TESTAPPS/bin/echo" "$work/echo/echo"
  bin "$ADDONS/bin/coredns" "$work/coredns/coredns"
  bin "$ADDONS/bin/flanneld" "$work/flanneld/opt/bin/flanneld"
  bin "$ADDONS/bin/flannel" "$work/flannel-cni/flannel"
  # busybox: /bin/busybox and a link per applet (busybox --list-full names them, e.g. bin/cp, usr/bin/env).
  dpkg-deb -x "$debs"/busybox-static_*.deb "$work/deb-busybox"
  bin "$work/deb-busybox/bin/busybox" "$work/busybox/bin/busybox"
  for a in $("$work/busybox/bin/busybox" --list-full); do
    [ -e "$work/busybox/$a" ] && continue
    mkdir -p "$work/busybox/$(dirname "$a")"
    ln -s /bin/busybox "$work/busybox/$a"
  done
  # iptables with what it loads; the alternatives Debian's postinst would set, to the nft backend
  # (what Debian 12 hosts use), legacy under its own names.
  for d in "$debs"/*.deb; do
    case ${d##*/} in busybox-static_*) continue ;; esac
    dpkg-deb -x "$d" "$work/iptables"
  done
  rm -rf "$work/iptables/usr/share" "$work/iptables/etc"
  for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-nft-multi "$work/iptables/usr/sbin/$t"
  done
  chroot "$work/iptables" /usr/sbin/iptables --version | grep -q nf_tables \
    || die "the iptables layer does not run (chroot $work/iptables /usr/sbin/iptables --version)"
  find "$work" -type d -exec chmod 0755 {} +
  python3 - "$work" "$OUT" "$PAUSE" "$COREDNS" "$FLANNEL" "$FLANNEL_CNI" "$ECHO" >"$work/spec.json" <<'EOF'
import json, sys
w, out, pause, coredns, flannel, flannel_cni, echo = sys.argv[1:]
path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
img = lambda ref, layers, **cfg: {"ref": ref, "layers": [f"{w}/{l}" for l in layers], "config": cfg}
print(json.dumps({"layout": f"{out}/layout", "archives": f"{out}/archives", "images": [
    img(pause, ["pause"], Entrypoint=["/pause"], User="65535:65535"),
    img(echo, ["echo"], Entrypoint=["/echo"], User="65532:65532", ExposedPorts={"8080/tcp": {}}),
    img(coredns, ["coredns"], Entrypoint=["/coredns"], WorkingDir="/",
        ExposedPorts={"53/tcp": {}, "53/udp": {}}),
    img(flannel, ["busybox", "iptables", "flanneld"], Entrypoint=["/opt/bin/flanneld"], Env=[f"PATH={path}"]),
    img(flannel_cni, ["busybox", "flannel-cni"], Entrypoint=["/flannel"], Env=[f"PATH={path}"]),
]}))
EOF
  python3 "$ROOT/ci/real/ocipack.py" <"$work/spec.json" >"$OUT/images.txt"
  {
    echo "programs: $ADDONS $TESTAPPS"
    echo "debian packages: $(tr '\n' ' ' <"$debs/.complete")"
  } >"$OUT/inputs"
  echo "recipe $RECIPE: packed $(date -u +%FT%TZ)" >"$OUT/.complete"
  log "packed in $(( $(date +%s) - t0 ))s -> $OUT"
fi

echo "KIMAGE_REAL_IMAGES=$OUT"
cat "$OUT/images.txt"

if [ "$cmd" = push ]; then
  command -v skopeo >/dev/null || die "skopeo is missing (ci/deps.sh installs it)"
  while read -r ref digest; do
    repo=${ref#*/}
    skopeo copy -q --dest-tls-verify=false --preserve-digests \
      "oci:$OUT/layout:$ref" "docker://$target/$repo" >/dev/null \
      || die "pushing $ref to $target/$repo failed"
    log "pushed $ref -> $target/$repo ($digest)"
  done <"$OUT/images.txt"
fi
