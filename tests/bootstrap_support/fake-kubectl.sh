#!/bin/sh
# A stand-in for kubectl in front of a cluster that is still forming, for the kimage-bootstrap tests.
# State lives in $FAKE_STATE:
#   readyz_fail          number of /readyz calls that still fail (connection refused)
#   fail_once/<file>     the next apply of <file> applies part of it, then fails
#   register_after/<n>   number of `get node <n>` calls before node <n> registers
#   nodes/<n>            a registered node: `label k=v` and `taint k[=v]:E` lines
#   applied/<file>       sha256 of what was last applied from <file>
#   admins_bound         kubeadm:cluster-admins exists (admin.conf is authorized)
#   events               one line per change to the cluster, and per use of super-admin.conf
#   calls                every call
set -u
S=$FAKE_STATE
conf=
n=$#
i=0
while [ "$i" -lt "$n" ]; do
    a=$1
    shift
    i=$((i + 1))
    case "$a" in
    --kubeconfig=*) conf=${a#--kubeconfig=} ;;
    --request-timeout=*) ;;
    *) set -- "$@" "$a" ;;
    esac
done
echo "$(basename "${conf:-none}") $*" >>"$S/calls"
[ -n "$conf" ] || {
    echo "fake kubectl: no --kubeconfig" >&2
    exit 2
}
[ -r "$conf" ] || {
    echo "error: stat $conf: no such file or directory" >&2
    exit 1
}
who=$(basename "$conf")

counter() { # file: prints and decrements a counter, 0 when absent
    c=$(cat "$1" 2>/dev/null || echo 0)
    if [ "$c" -gt 0 ]; then echo $((c - 1)) >"$1"; fi
    echo "$c"
}

case "${1:-} ${2:-}" in
"get --raw=/readyz")
    if [ "$(counter "$S/readyz_fail")" -gt 0 ]; then
        echo "The connection to the server 10.0.0.11:6443 was refused - did you specify the right host or port?" >&2
        exit 1
    fi
    echo ok
    ;;
"apply --server-side")
    if [ "$3" != --force-conflicts ] || [ "$4" != --field-manager=kimage ] || [ "$5" != -f ]; then
        echo "fake kubectl: unexpected apply flags: $*" >&2
        exit 2
    fi
    file=$6
    name=$(basename "$file")
    if [ "$who" = admin.conf ] && [ ! -f "$S/admins_bound" ]; then
        echo "Error from server (Forbidden): error when applying patch: clusterrolebindings.rbac.authorization.k8s.io is forbidden: User \"kubernetes-admin\" cannot patch resource \"clusterrolebindings\" in API group \"rbac.authorization.k8s.io\" at the cluster scope" >&2
        exit 1
    fi
    [ "$who" = super-admin.conf ] && echo "SUPER apply $name" >>"$S/events"
    sum=$(sha256sum "$file" | cut -d' ' -f1)
    if [ -f "$S/fail_once/$name" ]; then
        rm "$S/fail_once/$name"
        echo "PARTIAL apply $name" >>"$S/events"
        echo "serviceaccount/coredns serverside-applied"
        echo "Error from server (InternalError): error when applying: Internal error occurred: etcdserver: request timed out" >&2
        exit 1
    fi
    if [ "$(cat "$S/applied/$name" 2>/dev/null)" != "$sum" ]; then
        echo "$sum" >"$S/applied/$name"
        echo "CHANGE apply $name" >>"$S/events"
    fi
    [ "$name" = 00-cluster-admins.yaml ] && touch "$S/admins_bound"
    echo "objects of $name serverside-applied"
    ;;
"get node")
    node=$3
    if [ ! -f "$S/nodes/$node" ]; then
        if [ -f "$S/register_after/$node" ] && [ "$(counter "$S/register_after/$node")" -eq 0 ]; then
            echo "label kubernetes.io/hostname=$node" >"$S/nodes/$node"
        else
            echo "Error from server (NotFound): nodes \"$node\" not found" >&2
            exit 1
        fi
    fi
    case "$*" in *"go-template="*) ;; *)
        echo "fake kubectl: get node without the go-template" >&2
        exit 2
        ;;
    esac
    sort "$S/nodes/$node"
    ;;
"label node")
    node=$3
    [ -f "$S/nodes/$node" ] || {
        echo "Error from server (NotFound): nodes \"$node\" not found" >&2
        exit 1
    }
    [ "$4" = --overwrite ] || {
        echo "fake kubectl: label without --overwrite" >&2
        exit 2
    }
    shift 4
    for kv in "$@"; do
        k=${kv%%=*}
        if ! grep -qxF "label $kv" "$S/nodes/$node"; then
            grep -v "^label $k=" "$S/nodes/$node" >"$S/tmp.$$" || true
            echo "label $kv" >>"$S/tmp.$$"
            mv "$S/tmp.$$" "$S/nodes/$node"
            echo "CHANGE label $node $kv" >>"$S/events"
        fi
    done
    echo "node/$node labeled"
    ;;
"taint node")
    node=$3
    [ -f "$S/nodes/$node" ] || {
        echo "Error from server (NotFound): nodes \"$node\" not found" >&2
        exit 1
    }
    [ "$4" = --overwrite ] || {
        echo "fake kubectl: taint without --overwrite" >&2
        exit 2
    }
    shift 4
    for t in "$@"; do
        k=${t%%[=:]*}
        e=${t##*:}
        if ! grep -qxF "taint $t" "$S/nodes/$node"; then
            grep -v -e "^taint $k=.*:$e\$" -e "^taint $k:$e\$" "$S/nodes/$node" >"$S/tmp.$$" || true
            echo "taint $t" >>"$S/tmp.$$"
            mv "$S/tmp.$$" "$S/nodes/$node"
            echo "CHANGE taint $node $t" >>"$S/events"
        fi
    done
    echo "node/$node modified"
    ;;
*)
    echo "fake kubectl: unexpected call: $*" >&2
    exit 3
    ;;
esac
