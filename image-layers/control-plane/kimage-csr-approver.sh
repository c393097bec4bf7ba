#!/bin/sh
# kimage-csr-approver: approves the serving-certificate requests of worker-pool kubelets
# (serverTLSBootstrap; signer kubernetes.io/kubelet-serving), which Kubernetes leaves to an approver.
# kube-apiserver checks kubelets' serving certificates against the cluster CA, so without this `kubectl
# logs/exec` and metrics would not reach pool machines. Run by kimage-csr-approver.timer on
# control-plane nodes; each run looks at the pending requests once.
#
# A request is approved only when all of these hold, otherwise it stays pending (and is logged):
# - it was made by a node (user system:node:NAME in group system:nodes) for itself: subject
#   CN=system:node:NAME, O=system:nodes;
# - its usages are server auth plus at most digital signature and key encipherment;
# - it names at least one address, every DNS name is NAME or one of the Node's addresses, and every IP
#   address is one of the Node's addresses.
set -u

admin=${KIMAGE_ADMIN_KUBECONFIG:-/etc/kubernetes/admin.conf}
signer=kubernetes.io/kubelet-serving

log() { printf 'kimage-csr-approver: %s\n' "$*"; }

k() { kubectl --kubeconfig="$admin" --request-timeout=20s "$@" </dev/null; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# norm_ip ADDR: one spelling per address (openssl prints IPv6 uncompressed and in capitals).
norm_ip() {
    python3 -c 'import ipaddress, sys; print(ipaddress.ip_address(sys.argv[1]).compressed)' "$1" 2>/dev/null || printf '%s\n' "$1"
}

# check NAME USER: prints why the request must not be approved; nothing when it may.
check() {
    name=$1
    user=$2
    node=${user#system:node:}
    if [ "$node" = "$user" ] || [ -z "$node" ]; then
        echo "requested by $user, not by a node"
        return
    fi
    # shellcheck disable=SC2016 # go-templates, not shell
    k get csr "$name" -o go-template='{{range .spec.groups}}group {{.}}{{"\n"}}{{end}}{{range .spec.usages}}usage {{.}}{{"\n"}}{{end}}{{.spec.request}}{{"\n"}}' >"$tmp/csr" || {
        echo "cannot read it"
        return
    }
    grep -qxF "group system:nodes" "$tmp/csr" || {
        echo "requester is not in group system:nodes"
        return
    }
    grep -qxF "usage server auth" "$tmp/csr" || {
        echo "usages lack server auth"
        return
    }
    bad=$(sed -n 's/^usage //p' "$tmp/csr" | grep -vxF -e "server auth" -e "digital signature" -e "key encipherment")
    if [ -n "$bad" ]; then
        echo "usage not allowed: $(echo "$bad" | head -n 1)"
        return
    fi
    if ! grep -v -e '^group ' -e '^usage ' "$tmp/csr" | base64 -d >"$tmp/req.pem" 2>/dev/null ||
        ! openssl req -in "$tmp/req.pem" -noout -subject -nameopt multiline >"$tmp/subject" 2>/dev/null ||
        ! openssl req -in "$tmp/req.pem" -noout -text >"$tmp/text" 2>/dev/null ||
        ! openssl req -in "$tmp/req.pem" -noout -verify >/dev/null 2>&1; then
        echo "its request is not a readable, self-signed PEM CSR"
        return
    fi
    # The fields are indented below a `subject=` line.
    subject=$(sed -n 's/^ \{1,\}\([a-zA-Z]*\) *= *\(.*\)$/\1=\2/p' "$tmp/subject" | sort | tr '\n' ',')
    if [ "$subject" != "commonName=system:node:$node,organizationName=system:nodes," ]; then
        echo "subject is not CN=system:node:$node, O=system:nodes"
        return
    fi
    # shellcheck disable=SC2016
    k get node "$node" -o go-template='{{range .status.addresses}}{{.address}}{{"\n"}}{{end}}' >"$tmp/addresses" || {
        echo "node $node does not exist"
        return
    }
    : >"$tmp/ips"
    while read -r a; do
        [ -n "$a" ] && norm_ip "$a" >>"$tmp/ips"
    done <"$tmp/addresses"
    sans=$(sed -n '/X509v3 Subject Alternative Name/{n;p;}' "$tmp/text" | tr ',' '\n' | sed 's/^ *//')
    if [ -z "$sans" ]; then
        echo "it names no address"
        return
    fi
    printf '%s\n' "$sans" >"$tmp/sans"
    while IFS= read -r san; do
        case "$san" in
        DNS:*)
            v=${san#DNS:}
            [ "$v" = "$node" ] || grep -qxF "$v" "$tmp/addresses" || {
                echo "DNS name $v is not node $node's"
                return
            }
            ;;
        "IP Address:"*)
            v=$(norm_ip "${san#IP Address:}")
            grep -qxF "$v" "$tmp/ips" || {
                echo "IP address $v is not one of node $node's addresses"
                return
            }
            ;;
        *)
            echo "subject alternative name $san is not allowed"
            return
            ;;
        esac
    done <"$tmp/sans"
}

# shellcheck disable=SC2016
pending=$(k get csr -o go-template='{{range .items}}{{if not .status.conditions}}{{if eq .spec.signerName "'"$signer"'"}}{{.metadata.name}} {{.spec.username}}{{"\n"}}{{end}}{{end}}{{end}}' 2>&1) || {
    log "cannot list certificate signing requests: $(printf '%s\n' "$pending" | tail -n 1)"
    exit 1
}
status=0
printf '%s\n' "$pending" >"$tmp/pending"
while read -r name user; do
    [ -n "$name" ] || continue
    why=$(check "$name" "$user")
    if [ -n "$why" ]; then
        log "leaving $name ($user) pending: $why"
        continue
    fi
    if out=$(k certificate approve "$name" 2>&1); then
        log "approved $name: serving certificate of ${user#system:node:}"
    else
        log "approving $name failed: $(printf '%s\n' "$out" | tail -n 1)"
        status=1
    fi
done <"$tmp/pending"
exit "$status"
