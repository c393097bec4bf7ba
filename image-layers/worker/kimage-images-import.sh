#!/bin/sh
# Imports the images layer's OCI image layout into containerd's k8s.io namespace (where the kubelet's
# images live) and checks that each image name points at the manifest digest kimage.lock pinned.
# Every blob is hashed first: the layer was verified when it was applied, but a file changed on the
# disk since is refused here by name rather than by containerd's import with a less clear message.
# Env (tests): KIMAGE_IMAGES_DIR, CTR (the ctr command, e.g. with --address).
set -eu
dir=${KIMAGE_IMAGES_DIR:-/var/lib/kimage/images}
ctr=${CTR:-/usr/local/bin/ctr}
say() { echo "kimage-images: $*"; }
fail() { echo "kimage-images: $*" >&2; exit 1; }
cd "$dir"
[ -f index.json ] && [ -f images.list ] || fail "$dir has no index.json or images.list; nothing imported"
bad=0
for f in blobs/sha256/*; do
  want=${f##*/}
  got=$(sha256sum "$f" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "kimage-images: blob sha256:$want has sha256:$got; refusing every image" >&2
    bad=1
  fi
done
[ "$bad" = 0 ] || exit 1
# containerd 2.x imports through its transfer service unless told --local (client side, as 1.x does).
local=
if $ctr images import --help 2>&1 | grep -q -- '--local'; then local=--local; fi
tar -cf - oci-layout index.json blobs | $ctr -n k8s.io images import $local - >/dev/null \
  || fail "ctr images import failed"
n=0
while read -r name digest; do
  got=$($ctr -n k8s.io images ls "name==$name" | awk 'NR > 1 { print $3 }')
  [ "$got" = "$digest" ] || fail "image $name: containerd has ${got:-no image}, kimage.lock pins $digest"
  n=$((n + 1))
done < images.list
say "$n images imported into containerd (k8s.io), each at its pinned digest"
