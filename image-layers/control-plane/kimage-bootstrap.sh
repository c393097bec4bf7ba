#!/bin/sh
# kimage-bootstrap: makes the objects a kubeadm cluster has inside the Kubernetes API exist, from the
# bootstrap control-plane node, with no one logging in: RBAC, cluster-info, CoreDNS, the CNI, the worker
# pools' bootstrap tokens (the manifests in /etc/kimage/bootstrap, applied in file-name order), then the
# labels and taints of the *.list files there on each node once it has registered. Every control-plane
# node runs it: the others have no manifests, only self.list (their own Node, as `kubeadm join` marks
# a control-plane node), so no node's files list the other control-plane nodes.
#
# Safe to run on every boot and on several nodes at once: every manifest goes through server-side apply
# with one field manager (applying the same manifests again changes nothing), and labels and taints are
# only set where a node lacks them. Each step is retried until it succeeds or KIMAGE_BOOTSTRAP_ATTEMPTS
# tries have failed (default 360 x 5 s: 30 minutes); then it exits 1 with what it gave up on (systemd
# starts it again a minute later).
set -u

dir=${KIMAGE_BOOTSTRAP_DIR:-/etc/kimage/bootstrap}
admin=${KIMAGE_ADMIN_KUBECONFIG:-/etc/kubernetes/admin.conf}
super=${KIMAGE_SUPER_ADMIN_KUBECONFIG:-/etc/kubernetes/super-admin.conf}
attempts=${KIMAGE_BOOTSTRAP_ATTEMPTS:-360}
interval=${KIMAGE_BOOTSTRAP_INTERVAL:-5}
manager=kimage
# The first manifest: the binding that authorizes admin.conf itself.
admins=00-cluster-admins.yaml

log() { printf 'kimage-bootstrap: %s\n' "$*"; }

# Output of the last kubectl call, and its last line (the error, when it failed).
last=
lastline() { printf '%s\n' "$last" | sed '/^[[:space:]]*$/d' | tail -n 1; }

# k KUBECONFIG ARGS...: kubectl against the control-plane endpoint with that identity.
k() {
    conf=$1
    shift
    last=$(kubectl --kubeconfig="$conf" --request-timeout=20s "$@" 2>&1 </dev/null)
}

give_up() {
    log "ERROR: gave up $*"
    exit 1
}

# retry WHAT COMMAND...: runs COMMAND until it succeeds; gives up after $attempts failures.
retry() {
    what=$1
    shift
    n=0
    until "$@"; do
        n=$((n + 1))
        if [ "$n" -ge "$attempts" ]; then
            give_up "$what after $n attempts; last error: $(lastline)"
        fi
        # First failure, then every 12th: a cluster coming up is slow, not broken.
        if [ $((n % 12)) -eq 1 ]; then
            log "$what: not yet (attempt $n of $attempts, next in ${interval}s): $(lastline)"
        fi
        sleep "$interval"
    done
}

ready() { k "$admin" get --raw=/readyz; }

apply() { # KUBECONFIG FILE
    k "$1" apply --server-side --force-conflicts --field-manager="$manager" -f "$2"
}

# kubeadm:cluster-admins with admin.conf; while admin.conf is still forbidden (the binding that
# authorizes it does not exist yet), with super-admin.conf (system:masters), as `kubeadm init` does.
apply_admins() {
    apply "$admin" "$dir/$admins" && return 0
    case "$last" in
    *[Ff]orbidden*) ;;
    *) return 1 ;;
    esac
    if [ ! -r "$super" ]; then
        last="admin.conf is not authorized to bind kubeadm:cluster-admins and $super is missing (only the bootstrap node has it)"
        return 1
    fi
    log "admin.conf is not authorized yet: binding kubeadm:cluster-admins with super-admin.conf"
    apply "$super" "$dir/$admins"
}

# node_state NAME: `label KEY=VALUE` and `taint KEY[=VALUE]:EFFECT` lines of a registered node.
node_state() {
    # shellcheck disable=SC2016 # a go-template, not shell
    k "$admin" get node "$1" -o go-template='{{range $k, $v := .metadata.labels}}label {{$k}}={{$v}}{{"\n"}}{{end}}{{range .spec.taints}}taint {{.key}}{{if .value}}={{.value}}{{end}}:{{.effect}}{{"\n"}}{{end}}'
}

# fix_node NAME LABELS TAINTS: sets what the node lacks; fails while it has not registered.
fix_node() {
    name=$1
    node_state "$name" || return 1
    state=$last
    set -f
    old_ifs=$IFS
    IFS=,
    # shellcheck disable=SC2086 # split on commas on purpose
    set -- $2 -- $3
    IFS=$old_ifs
    set +f
    want_labels=
    while [ "$1" != -- ]; do
        if [ "$1" != - ] && ! printf '%s\n' "$state" | grep -qxF "label $1"; then
            want_labels="$want_labels $1"
        fi
        shift
    done
    shift
    want_taints=
    for t in "$@"; do
        if [ "$t" != - ] && ! printf '%s\n' "$state" | grep -qxF "taint $t"; then
            want_taints="$want_taints $t"
        fi
    done
    if [ -n "$want_labels" ]; then
        # shellcheck disable=SC2086 # one argument per label
        k "$admin" label node "$name" --overwrite $want_labels || return 1
        log "node $name: labelled$want_labels"
    fi
    if [ -n "$want_taints" ]; then
        # shellcheck disable=SC2086 # one argument per taint
        k "$admin" taint node "$name" --overwrite $want_taints || return 1
        log "node $name: tainted$want_taints"
    fi
    return 0
}

# Every node of the *.list files done, or some still unregistered (then `last` says which).
nodes_done=" "
fix_nodes() {
    waiting=
    for list in "$dir"/*.list; do
        [ -f "$list" ] || continue
        while read -r name labels taints; do
            case "$name" in '' | '#'*) continue ;; esac
            case "$nodes_done" in *" $name "*) continue ;; esac
            if fix_node "$name" "${labels:--}" "${taints:--}"; then
                nodes_done="$nodes_done$name "
            else
                waiting="$waiting $name ($(lastline))"
            fi
        done <"$list"
    done
    if [ -n "$waiting" ]; then
        last="waiting for nodes to register:$waiting"
        return 1
    fi
    return 0
}

[ -d "$dir" ] || give_up "before starting: $dir is missing"
[ -r "$admin" ] || give_up "before starting: $admin is missing"
command -v kubectl >/dev/null 2>&1 || give_up "before starting: kubectl is not installed"

retry "waiting for the apiserver (GET /readyz with admin.conf)" ready
log "apiserver is ready"
if [ -f "$dir/$admins" ]; then
    retry "applying $admins" apply_admins
    log "applied $admins"
fi
count=0
for f in "$dir"/*.yaml; do
    [ -f "$f" ] || continue
    name=${f##*/}
    [ "$name" = "$admins" ] && continue
    retry "applying $name" apply "$admin" "$f"
    count=$((count + 1))
    log "applied $name"
done
retry "labelling and tainting nodes" fix_nodes
log "done: $count manifests applied, nodes labelled and tainted"
