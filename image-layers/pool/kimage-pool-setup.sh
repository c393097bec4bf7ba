#!/bin/sh
# kimage-pool-setup: prepares a worker-pool machine before its kubelet starts.
# 1. The hostname becomes the Node name. Platforms that run pools (EC2, GCE, OpenStack) give each
#    machine its own; a NoCloud seed shared by several machines gives none, and the image's default
#    (localhost) would make them all the same Node: then name the machine <pool>-<machine id>.
# 2. The cluster CA in /etc/kubernetes/pki/ca.crt must have the public key the pool's user-data pins
#    (KIMAGE_CA_CERT_HASH, kubeadm's sha256:<hex of the SubjectPublicKeyInfo>); otherwise the kubelet
#    must not start.
# Settings: /etc/kimage/pool.env (KIMAGE_POOL, KIMAGE_CA_CERT_HASH).
set -u
env=${KIMAGE_POOL_ENV:-/etc/kimage/pool.env}
ca=${KIMAGE_CA_FILE:-/etc/kubernetes/pki/ca.crt}
machine_id=${KIMAGE_MACHINE_ID_FILE:-/etc/machine-id}

log() { printf 'kimage-pool-setup: %s\n' "$*"; }
fail() {
    log "ERROR: $*"
    exit 1
}

[ -r "$env" ] || fail "$env is missing"
# shellcheck source=/dev/null
. "$env"
[ -n "${KIMAGE_POOL:-}" ] || fail "$env does not name the pool (KIMAGE_POOL)"
[ -n "${KIMAGE_CA_CERT_HASH:-}" ] || fail "$env has no CA hash (KIMAGE_CA_CERT_HASH)"

current=$(hostname 2>/dev/null || true)
case "$current" in
"" | localhost | localhost.* | "$KIMAGE_POOL")
    id=$(tr -dc 'a-f0-9' <"$machine_id" 2>/dev/null | cut -c1-10)
    [ -n "$id" ] || fail "hostname '$current' is not unique and $machine_id is empty: give the machine a hostname"
    new="$KIMAGE_POOL-$id"
    if ! hostnamectl set-hostname "$new" 2>/dev/null; then
        if ! printf '%s\n' "$new" >/etc/hostname || ! hostname "$new"; then
            fail "cannot set the hostname to $new"
        fi
    fi
    log "hostname '$current' is not unique across the pool's machines: set it to $new (the Node name)"
    ;;
*) log "hostname $current (the Node name)" ;;
esac

[ -r "$ca" ] || fail "$ca is missing"
command -v openssl >/dev/null 2>&1 || fail "openssl is needed to check the cluster CA against the pool's CA hash"
actual=$(openssl x509 -in "$ca" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "sha256:$actual" != "$KIMAGE_CA_CERT_HASH" ]; then
    fail "$ca has public key hash sha256:$actual, the pool's user-data pins $KIMAGE_CA_CERT_HASH: not starting the kubelet with a CA this pool was not built for"
fi
log "cluster CA matches $KIMAGE_CA_CERT_HASH"
