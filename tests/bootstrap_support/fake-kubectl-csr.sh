#!/bin/sh
# A stand-in for kubectl serving CertificateSigningRequests and Nodes, for the kimage-csr-approver tests.
# State in $FAKE_STATE:
#   csr/<name>/user, signer, groups (one a line), usages (one a line), request (PEM), approved (once done)
#   nodes/<name>    the Node's status.addresses, one a line
#   events          `APPROVE <name>` per approval
set -u
S=$FAKE_STATE
n=$#
i=0
while [ "$i" -lt "$n" ]; do
    a=$1
    shift
    i=$((i + 1))
    case "$a" in
    --kubeconfig=* | --request-timeout=*) ;;
    *) set -- "$@" "$a" ;;
    esac
done
echo "$*" >>"$S/calls"
case "${1:-} ${2:-}" in
"get csr")
    if [ "$3" = -o ]; then
        # The list: pending requests (no conditions) of the template's signer.
        for d in "$S"/csr/*/; do
            name=$(basename "$d")
            [ -f "$d/approved" ] && continue
            case "$4" in *"\"$(cat "$d/signer")\""*) ;; *) continue ;; esac
            echo "$name $(cat "$d/user")"
        done
        exit 0
    fi
    d="$S/csr/$3"
    [ -d "$d" ] || {
        echo "Error from server (NotFound): certificatesigningrequests.certificates.k8s.io \"$3\" not found" >&2
        exit 1
    }
    sed 's/^/group /' "$d/groups"
    sed 's/^/usage /' "$d/usages"
    base64 -w0 <"$d/request"
    echo
    ;;
"get node")
    [ -f "$S/nodes/$3" ] || {
        echo "Error from server (NotFound): nodes \"$3\" not found" >&2
        exit 1
    }
    cat "$S/nodes/$3"
    ;;
"certificate approve")
    touch "$S/csr/$3/approved"
    echo "APPROVE $3" >>"$S/events"
    echo "certificatesigningrequest.certificates.k8s.io/$3 approved"
    ;;
*)
    echo "fake kubectl: unexpected call: $*" >&2
    exit 3
    ;;
esac
