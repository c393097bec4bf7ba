#!/bin/sh
# kimage-report: after cloud-init has finished, print what this node became to the serial console, so an
# operator (or a test) can see the result without logging in. Read-only; safe to run at any time.
# shellcheck source=/dev/null
if [ -f /etc/kimage/node.env ]; then . /etc/kimage/node.env; fi
node=${KIMAGE_NODE:-$(hostname)}
out() { printf 'KIMAGE-REPORT %s %s\n' "$node" "$*"; }

status=$(cloud-init status --wait --long 2>&1 || true)
printf '%s\n' "$status" | while IFS= read -r line; do out "cloud-init: $line"; done

for unit in ${KIMAGE_UNITS:-}; do
    state=$(systemctl is-active "$unit" 2>/dev/null || true)
    exe=$(systemctl show -p ExecStart --value "$unit" 2>/dev/null | sed -n 's/.*path=\([^ ;]*\).*/\1/p' | head -n1)
    if [ -n "$exe" ] && [ ! -x "$exe" ]; then
        out "unit $unit: $state (binary $exe is not on this node)"
    else
        out "unit $unit: $state"
    fi
done

case "${KIMAGE_ROLE:-}" in control-plane | worker) kubelet_node=1 ;; *) kubelet_node=0 ;; esac
if [ "$kubelet_node" = 1 ]; then
    for m in br_netfilter overlay nf_conntrack; do
        if grep -q "^$m " /proc/modules; then out "module $m: loaded"; else out "module $m: missing"; fi
    done
    for k in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
        out "sysctl $k = $(sysctl -n "$k" 2>/dev/null || echo unset)"
    done
    out "swap: $(awk 'NR > 1 { n++ } END { print (n ? n " active" : "off") }' /proc/swaps)"
    if command -v ctr >/dev/null 2>&1; then
        ctr --address /run/containerd/containerd.sock version 2>&1 | while IFS= read -r line; do out "ctr: $line"; done
    fi
fi
case " ${KIMAGE_UNITS:-} " in
*" etcd.service "*)
    if command -v etcdctl >/dev/null 2>&1; then
        pki=/etc/kubernetes/pki/etcd
        ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=$pki/ca.crt \
            --cert=$pki/healthcheck-client.crt --key=$pki/healthcheck-client.key \
            --command-timeout=10s endpoint health 2>&1 | while IFS= read -r line; do out "etcd: $line"; done
    fi
    ;;
esac
out "hosts: $(grep -c -v -e '^#' -e '^$' /etc/hosts) entries, $(grep -c "$node" /etc/hosts) for this node"
out "done"
