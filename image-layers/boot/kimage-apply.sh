#!/bin/sh
# kimage-apply: run once per instance by cloud-init (runcmd). Verifies and extracts this node's layers,
# installs its secrets, fetches binaries when the profile asks for boot-time fetching, then starts the
# node's units in order. Everything it does is also visible in `kimage unpack`.
# Settings come from /run/kimage/boot.env, written by the same user-data.
set -eu
# shellcheck source=/dev/null
. /run/kimage/boot.env

log() {
    printf 'kimage: %s\n' "$*"
    printf 'kimage: %s\n' "$*" >>/var/log/kimage-apply.log 2>/dev/null || true
    # The serial console is where people (and tests) watch a node that has no SSH.
    printf 'KIMAGE %s: %s\n' "$KIMAGE_NODE" "$*" >/dev/console 2>/dev/null || true
}
fail() {
    log "ERROR: $*"
    exit 1
}

work=/run/kimage
mkdir -p "$work/layers" /var/lib/kimage
chmod 0700 "$work"

# 1. Find each layer where the profile says it is, and check its digest before using it.
case "$KIMAGE_LAYERS_FROM" in
seed)
    dev=$(blkid -L cidata 2>/dev/null || blkid -L CIDATA 2>/dev/null || true)
    [ -n "$dev" ] || fail "no NoCloud volume labelled cidata found to read layers from"
    mkdir -p "$work/seed"
    mountpoint -q "$work/seed" || mount -o ro "$dev" "$work/seed" || fail "cannot mount $dev"
    src="$work/seed/layers"
    ;;
url) src="$KIMAGE_LAYERS_URL" ;;
image) src=/var/lib/kimage/layers ;;
*) fail "unknown layer source $KIMAGE_LAYERS_FROM" ;;
esac

fetch_url() { # url dest
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 5 --retry-delay 2 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
    else
        python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2"
    fi
}

for layer in $KIMAGE_LAYERS; do
    sha=${layer%%:*}
    rest=${layer#*:}
    name=${rest#*:}
    file="$work/layers/$sha.tar.gz"
    if [ "$KIMAGE_LAYERS_FROM" = url ]; then
        fetch_url "$src/$sha.tar.gz" "$file" || fail "layer $name: download of $src/$sha.tar.gz failed"
    else
        [ -f "$src/$sha.tar.gz" ] || fail "layer $name: $src/$sha.tar.gz is missing"
        file="$src/$sha.tar.gz"
    fi
    actual=$(sha256sum "$file" | cut -d' ' -f1)
    [ "$actual" = "$sha" ] || fail "layer $name: digest mismatch for $file: expected sha256 $sha, got $actual; refusing to install it"
    tar -xzf "$file" -C / --no-overwrite-dir || fail "layer $name: extraction failed"
    log "layer $name ($sha) verified and installed"
done

# 2. Secrets came inline with the user-data (0600); install them and drop the copy in /run.
if [ -f "$work/secrets.tar" ]; then
    tar -xf "$work/secrets.tar" -C / --no-overwrite-dir || fail "secrets: extraction failed"
    rm -f "$work/secrets.tar"
    log "secrets installed"
fi
if [ "$KIMAGE_LAYERS_FROM" = seed ]; then
    umount "$work/seed" 2>/dev/null || true
fi

# 3. Binaries from their locked URLs, each checked against its locked digest.
if [ "$KIMAGE_FETCH" = 1 ]; then
    python3 /usr/local/lib/kimage/kimage-fetch /etc/kimage/fetch.json || fail "binary download or verification failed (see above)"
    log "binaries fetched and verified"
fi

# 4. The node's units, in the order and with the action the render stage planned: restart boot-time
#    units that ran before the layers existed (modules, sysctl), enable and start kimage's services.
#    --no-block: etcd waits for quorum, and the other members may still be booting.
systemctl daemon-reload
for step in $KIMAGE_START; do
    action=${step%%:*}
    unit=${step#*:}
    case "$action" in
    restart) systemctl restart "$unit" || log "warning: restarting $unit failed" ;;
    try-restart) systemctl try-restart "$unit" || true ;;
    enable-now)
        systemctl enable "$unit" >/dev/null 2>&1 || fail "cannot enable $unit"
        systemctl restart --no-block "$unit" || fail "cannot start $unit"
        ;;
    *) fail "unknown start action $action for $unit" ;;
    esac
done
log "applied: $(echo "$KIMAGE_LAYERS" | wc -w) layers; started: $KIMAGE_START"
