#!/usr/bin/env bash
# The mission's own test: VMs boot from kimage's artifacts and form their cluster with no SSH.
#
#   ci/vm/run.sh [--broken] WORKDIR
#
# Builds (or reuses) a Debian test image, packs Debian's etcd/containerd/runc/CNI builds into a local
# release mirror, writes a test profile (3 external etcd nodes, 2 haproxy+keepalived nodes holding a VIP,
# workers), runs `kimage lock`, `kimage fetch` and `kimage build` against the mirror over HTTP inside a
# private network namespace, boots every VM under QEMU (TCG) from its NoCloud seed, and checks from the
# namespace, with kimage's own client certificates and nothing typed into any VM:
#   - etcd: cluster healthy over TLS with all members (healthcheck-client and apiserver-etcd-client certs);
#   - load balancer: the VIP serves the control plane's real apiserver certificate (a stand-in TLS server on
#     the control-plane address, since Kubernetes server binaries cannot be had here), verified for the VIP
#     with the cluster CA; the VIP moves to the second load balancer when the first VM is stopped;
#   - worker: modules, sysctl, swap off, /etc/hosts, containerd answering `ctr version` (console report);
#   - every node: cloud-init finished without errors (console report of `cloud-init status --long`);
#   - boot-time fetching: a worker built with `binaries.source: fetch-at-boot` downloads and verifies its
#     binaries from the mirror; a worker pointed at a corrupted mirror refuses them and says so;
#   - growth: a fourth etcd node added to the profile and built later from the same state boots alone once
#     the cluster runs, joins it as a learner by itself and is promoted to a voting member.
# --broken builds etcd-3 with an address outside the network (a wrong initial-cluster entry) and boots only
# the etcd nodes: the run must fail; ci/vm/test.sh checks that it does (a test of the test).
#
# Env: KIMAGE (kimage binary, default target/release/kimage), KIMAGE_VM_CACHE (image cache dir),
#      VM_TIMEOUT (seconds to wait for cloud-init, default 900), KEEP=1 (leave VMs running on failure).
set -euo pipefail
BROKEN=0
if [ "${1:-}" = --broken ]; then BROKEN=1; shift; fi
W=$(realpath -m "${1:?usage: run.sh [--broken] WORKDIR}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIMAGE=$(realpath "${KIMAGE:-$ROOT/target/release/kimage}")
CACHE=${KIMAGE_VM_CACHE:-/var/tmp/kimage-vm}
TIMEOUT=${VM_TIMEOUT:-900}
NS=kimgvm$$
BR=kbr0
NET=10.213.77
HOST=$NET.1
VIP=$NET.100
CP=$NET.10
rm -rf "$W"
mkdir -p "$W"/{logs,run,seeds,mirror,p}
T0=$(date +%s.%N)
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | xargs printf '%.1f'; }
say() { echo "[vm $(since "$T0")s] $*"; }
TIMINGS=$W/timings.txt
timing() { echo "$*" | tee -a "$TIMINGS"; }
FAILED=()
fail() { FAILED+=("$*"); echo "FAIL: $*"; }
pass() { echo "ok: $*"; }
nsx() { ip netns exec "$NS" "$@"; }

cleanup() {
  local rc=$?
  if [ "${KEEP:-0}" = 1 ] && [ $rc -ne 0 ]; then
    echo "KEEP=1: VMs and namespace $NS left running"
    return
  fi
  for f in "$W"/run/*.pid "$W"/run/*.srvpid; do
    if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
  done
  sleep 0.5
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"/run/*.qcow2
}
trap cleanup EXIT

# --- 1. image and mirror ------------------------------------------------------------------------------
s=$(now)
"$ROOT/ci/vm/image.sh" "$CACHE"
timing "image: $(since "$s")s (cached when unchanged)"
eval "$("$ROOT/ci/vm/mirror.sh" "$W/mirror")"
# A second mirror with a corrupted containerd tarball: same paths, wrong bytes.
cp -a "$W/mirror" "$W/mirror-bad"
bad=$(find "$W/mirror-bad" -name 'containerd-*.tar.gz')
printf 'tampered' | dd of="$bad" bs=1 seek=1000 conv=notrunc 2>/dev/null

# --- 2. network namespace: bridge, host address, control-plane stand-in address, one tap per VM --------
ip netns add "$NS"
nsx ip link set lo up
nsx ip link add "$BR" type bridge
nsx ip link set "$BR" up
nsx ip addr add "$HOST/24" dev "$BR"
nsx ip addr add "$CP/24" dev "$BR"
serve() { # dir port
  nsx python3 -m http.server --bind "$HOST" --directory "$1" "$2" >"$W/logs/http-$2.log" 2>&1 &
  echo $! >"$W/run/http-$2.srvpid"
}
serve "$W/mirror" 8080
serve "$W/mirror-bad" 8081
for _ in $(seq 50); do nsx curl -fs "http://$HOST:8080/" >/dev/null && break; sleep 0.2; done

# --- 3. profiles and kimage --------------------------------------------------------------------------
ETCD3=$NET.13
[ $BROKEN = 1 ] && ETCD3=10.213.78.13
profile() { # source mirror-port
  cat <<EOF
apiVersion: kimage/v1alpha1
kind: Cluster
name: vmtest
kubernetes:
  version: v1.35.0
  serviceCIDR: 10.96.0.0/12
  podCIDR: 10.244.0.0/16
  proxyMode: iptables
controlPlane:
  endpoint: $VIP:6443
loadBalancer:
  kind: haproxy
  vip: $VIP
  interface: eth0
etcd:
  version: $ETCD_VERSION
  topology: external
  # TCG guests are slow: give raft room before it calls an election.
  heartbeatInterval: 300
  electionTimeout: 3000
containerRuntime:
  containerd: $CONTAINERD_VERSION
  runc: $RUNC_VERSION
  cniPlugins: $CNI_VERSION
binaries:
  source: $1
  mirror: http://$HOST:$2
  # Kubernetes server binaries cannot be downloaded here; their units are rendered and fail for the missing
  # binary, which the console report says.
  exclude: [kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, crictl]
os:
  # Workers leave /etc/hosts by default; the console report checks that each node finds its own name there.
  hostsWorkers: true
network:
  interface: eth0
  prefixLength: 24
nodes:
  - {name: cp-1,     role: control-plane, address: $CP}
  - {name: etcd-1,   role: etcd,          address: $NET.11, mac: "52:54:00:77:00:11"}
  - {name: etcd-2,   role: etcd,          address: $NET.12, mac: "52:54:00:77:00:12"}
  - {name: etcd-3,   role: etcd,          address: $ETCD3, mac: "52:54:00:77:00:13"}
  - {name: lb-1,     role: load-balancer, address: $NET.21, mac: "52:54:00:77:00:21", priority: 150}
  - {name: lb-2,     role: load-balancer, address: $NET.22, mac: "52:54:00:77:00:22", priority: 100}
  - {name: worker-1, role: worker,        address: $NET.31, mac: "52:54:00:77:00:31"}
  - {name: worker-2, role: worker,        address: $NET.32, mac: "52:54:00:77:00:32"}
  - {name: worker-3, role: worker,        address: $NET.33, mac: "52:54:00:77:00:33"}
EOF
}
export KIMAGE_CACHE=$W/cache
state=$W/p/state
s=$(now)
mkdir -p "$W/p/embed" "$W/p/fetch" "$W/p/corrupt"
profile embed 8080 >"$W/p/embed/cluster.yaml"
profile fetch-at-boot 8080 >"$W/p/fetch/cluster.yaml"
profile fetch-at-boot 8081 >"$W/p/corrupt/cluster.yaml"
nsx "$KIMAGE" lock -p "$W/p/embed/cluster.yaml"
nsx "$KIMAGE" fetch -p "$W/p/embed/cluster.yaml" --plain
# The other two builds pin the same digests: the lock is the same file.
cp "$W/p/embed/kimage.lock" "$W/p/fetch/"
cp "$W/p/embed/kimage.lock" "$W/p/corrupt/"
"$KIMAGE" build -p "$W/p/embed/cluster.yaml" --state "$state" --all
if [ $BROKEN = 0 ]; then
  "$KIMAGE" build -p "$W/p/fetch/cluster.yaml" --state "$state" --role worker-2
  "$KIMAGE" build -p "$W/p/corrupt/cluster.yaml" --state "$state" --role worker-3
fi
timing "lock + fetch + build: $(since "$s")s"
# Growth: the same cluster with a fourth etcd member, built later from the same state. The state remembers
# the three members etcd formed with, so etcd-4 is built as a joining member; it boots once the cluster runs.
if [ $BROKEN = 0 ]; then
  mkdir -p "$W/p/grow"
  { profile embed 8080
    echo '  - {name: etcd-4,   role: etcd,          address: '"$NET"'.14, mac: "52:54:00:77:00:14"}'
  } >"$W/p/grow/cluster.yaml"
  cp "$W/p/embed/kimage.lock" "$W/p/grow/"
  "$KIMAGE" build -p "$W/p/grow/cluster.yaml" --state "$state" --role etcd-4 2>&1 | tee "$W/logs/grow-build.txt"
  grep -q "etcd-4 join the running cluster" "$W/logs/grow-build.txt" ||
    fail "growth: kimage build did not plan etcd-4 as a joining member"
fi
# The client side of the checks: certificates from kimage's own state, materialized with unpack.
"$KIMAGE" unpack -p "$W/p/embed/cluster.yaml" --state "$state" --role etcd-1 --into "$W/etcd-1"
"$KIMAGE" unpack -p "$W/p/embed/cluster.yaml" --state "$state" --role cp-1 --into "$W/cp-1"
EPKI=$W/etcd-1/etc/kubernetes/pki/etcd
KPKI=$W/cp-1/etc/kubernetes/pki

# --- 4. boot --------------------------------------------------------------------------------------------
ACCEL="-accel tcg,thread=multi,tb-size=256 -cpu max"
if grep -qE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then ACCEL="-enable-kvm -cpu host"; fi
boot() { # node out-dir mem
  local n=$1 out=$2 mem=${3:-512} mac tap
  mac=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"][sys.argv[2]]["address"].split(".")[-1])' "$out/manifest.json" "$n")
  mac=52:54:00:77:00:$mac
  tap=t-$n
  nsx ip tuntap add dev "$tap" mode tap
  nsx ip link set "$tap" master "$BR" up
  qemu-img create -q -f qcow2 -b "$CACHE/base.qcow2" -F qcow2 "$W/run/$n.qcow2"
  # shellcheck disable=SC2086
  nsx qemu-system-x86_64 $ACCEL -m "$mem" -smp 1 -name "$n" -display none -monitor none -no-reboot \
    -serial "file:$W/logs/serial-$n.log" -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 quiet systemd.show_status=0" \
    -drive "file=$W/run/$n.qcow2,if=virtio,format=qcow2" \
    -drive "file=$out/nodes/$n/seed.img,if=virtio,format=raw,readonly=on" \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=$mac" \
    -pidfile "$W/run/$n.pid" -daemonize
  now >"$W/run/$n.start"
}
EMBED=$W/p/embed/out
if [ $BROKEN = 1 ]; then
  VMS=(etcd-1 etcd-2 etcd-3)
else
  VMS=(etcd-1 etcd-2 etcd-3 lb-1 lb-2 worker-1 worker-2 worker-3)
fi
for n in "${VMS[@]}"; do
  case $n in
    worker-1) boot "$n" "$EMBED" 768 ;;
    worker-2) boot "$n" "$W/p/fetch/out" 768 ;;
    worker-3) boot "$n" "$W/p/corrupt/out" 768 ;;
    *) boot "$n" "$EMBED" 512 ;;
  esac
done
say "booted ${#VMS[@]} VMs: ${VMS[*]}"

# The stand-in kube-apiserver on cp-1's address, with cp-1's real certificate and key from kimage: a
# threaded TLS server (openssl s_server serves one client at a time, and a health-check connection from
# a load balancer that is killed mid-handshake would block it).
nsx python3 - "$CP" "$KPKI/apiserver.crt" "$KPKI/apiserver.key" >"$W/logs/standin.log" 2>&1 <<'PY' &
import http.server, socketserver, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    timeout = 10
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"kimage stand-in apiserver\n")
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv = S((sys.argv[1], 6443), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
srv.serve_forever()
PY
echo $! >"$W/run/standin.srvpid"

# --- 5. wait for every node's report ------------------------------------------------------------------
declare -A done_at=()
s_wait=$(now)
while :; do
  for n in "${VMS[@]}"; do
    [ -n "${done_at[$n]:-}" ] && continue
    if grep -aq "KIMAGE-REPORT $n done" "$W/logs/serial-$n.log" 2>/dev/null; then
      done_at[$n]=$(since "$(cat "$W/run/$n.start")")
      final=$(grep -ao "KIMAGE-FINAL $n cloud-init finished after [0-9.]*" "$W/logs/serial-$n.log" | awk '{print $NF}')
      timing "boot $n: cloud-init final at ${final:-?}s of guest uptime, console report ${done_at[$n]}s after start"
    fi
  done
  [ ${#done_at[@]} = ${#VMS[@]} ] && break
  if [ "$(echo "$(since "$s_wait") > $TIMEOUT" | bc)" = 1 ]; then
    for n in "${VMS[@]}"; do [ -n "${done_at[$n]:-}" ] || fail "$n: no console report within ${TIMEOUT}s"; done
    break
  fi
  sleep 5
done
say "all nodes reported (or timed out)"
grep -ah "^KIMAGE" "$W"/logs/serial-*.log | sed 's/\r$//' >"$W/logs/console-summary.txt" || true

report() { grep -a "KIMAGE-REPORT $1 " "$W/logs/serial-$1.log" | sed 's/\r$//'; }

# --- 6. etcd over TLS from the namespace, with kimage's client certificates ----------------------------
s=$(now)
EPS=https://$NET.11:2379,https://$NET.12:2379,https://$ETCD3:2379
healthy=0
# Every node has reported (its units started) by now: a formed cluster answers within seconds, so a wrong
# one is not waited on for long (10 tries, 50-100 s).
for _ in $(seq 10); do
  if nsx etcdctl --endpoints="$EPS" --cacert "$EPKI/ca.crt" --cert "$EPKI/healthcheck-client.crt" \
    --key "$EPKI/healthcheck-client.key" --command-timeout=5s endpoint health >"$W/logs/etcd-health.txt" 2>&1; then
    healthy=1
    break
  fi
  sleep 5
done
cat "$W/logs/etcd-health.txt"
if [ $healthy = 1 ] && [ "$(grep -c 'is healthy' "$W/logs/etcd-health.txt")" = 3 ]; then
  pass "etcd: all 3 members healthy over TLS (healthcheck-client)"
  timing "etcd healthy: $(since "$s_wait")s after boot started"
  if [ $BROKEN = 0 ]; then
    boot etcd-4 "$W/p/grow/out" 512
    say "growth: booted etcd-4 alone, built later with etcd-4 as a joining member"
  fi
else
  fail "etcd: not all 3 members healthy"
fi
if nsx etcdctl --endpoints="https://$NET.11:2379" --cacert "$EPKI/ca.crt" --cert "$KPKI/apiserver-etcd-client.crt" \
  --key "$KPKI/apiserver-etcd-client.key" member list -w table >"$W/logs/etcd-members.txt" 2>&1 &&
  [ "$(grep -c 'started' "$W/logs/etcd-members.txt")" = 3 ]; then
  cat "$W/logs/etcd-members.txt"
  pass "etcd: member list shows 3 started members (apiserver-etcd-client)"
else
  cat "$W/logs/etcd-members.txt"
  fail "etcd: member list does not show 3 started members"
fi
if nsx etcdctl --endpoints="https://$NET.11:2379" --cacert "$EPKI/ca.crt" --command-timeout=5s endpoint health >/dev/null 2>&1; then
  fail "etcd: a client without a certificate was accepted"
else
  pass "etcd: a client without a certificate is refused"
fi

if [ $BROKEN = 1 ]; then
  say "broken build: failures ${#FAILED[@]}"
  printf '%s\n' "${FAILED[@]}" >"$W/failures.txt"
  [ ${#FAILED[@]} = 0 ] && exit 0
  exit 1
fi

# --- 7. load balancer: the VIP, TLS with the cluster CA, failover ---------------------------------------
vip_ok() {
  echo | nsx timeout 5 openssl s_client -connect "$VIP:6443" -CAfile "$KPKI/ca.crt" -verify_return_error \
    -verify_ip "$VIP" >"$W/logs/s_client.txt" 2>&1
}
ok=0
for _ in $(seq 60); do vip_ok && { ok=1; break; }; sleep 2; done
if [ $ok = 1 ] && grep -q 'Verify return code: 0 (ok)' "$W/logs/s_client.txt"; then
  pass "lb: $VIP:6443 serves cp-1's apiserver certificate, verified for the VIP with the cluster CA"
else
  cat "$W/logs/s_client.txt"
  fail "lb: no verified TLS through the VIP"
fi
holder() { nsx ip neigh show "$VIP" | awk '{print $5}'; }
before=$(holder)
say "VIP $VIP is at $before (lb-1 is 52:54:00:77:00:21)"
s=$(now)
kill "$(cat "$W/run/lb-1.pid")"
moved=0
for _ in $(seq 120); do
  if vip_ok; then
    after=$(holder)
    if [ "$after" = "52:54:00:77:00:22" ]; then moved=1; break; fi
  fi
  sleep 0.5
done
failover=$(since "$s")
if [ $moved = 1 ]; then
  pass "lb: VIP moved to lb-2 and serves again after ${failover}s"
  timing "VIP failover: ${failover}s"
else
  fail "lb: VIP did not move to lb-2 within 60s (holder: $(holder))"
fi

# --- 8. what the nodes said on their consoles ----------------------------------------------------------
for n in "${VMS[@]}"; do
  r=$(report "$n")
  if [ "$n" = worker-3 ]; then
    # Its apply step must have failed, and cloud-init must say so.
    if grep -q "cloud-init: status: error" <<<"$r"; then pass "$n: cloud-init reports the failure"; else fail "$n: cloud-init does not report the refused binaries"; fi
    continue
  fi
  if grep -q "cloud-init: status: done" <<<"$r" && ! grep -qi "cloud-init: .*error" <<<"$r"; then
    pass "$n: cloud-init finished without errors"
  else
    echo "$r"
    fail "$n: cloud-init did not finish cleanly"
  fi
done
# Here-strings, not `echo | grep -q`: with pipefail, grep -q quitting at its first match can make
# echo fail with SIGPIPE, and a line that is there reads as missing (seen once: worker-2 swap: off).
for n in worker-1 worker-2; do
  r=$(report "$n")
  for want in "module br_netfilter: loaded" "module overlay: loaded" "sysctl net.ipv4.ip_forward = 1" \
    "sysctl net.bridge.bridge-nf-call-iptables = 1" "swap: off" "unit containerd.service: active" "ctr: Server:"; do
    if grep -qF "$want" <<<"$r"; then pass "$n: $want"; else fail "$n: missing '$want' in its console report"; fi
  done
  if grep -q "hosts: .* 1 for this node" <<<"$r"; then pass "$n: /etc/hosts written"; else fail "$n: /etc/hosts"; fi
  echo "$r" | grep -E "unit (kubelet|kube-proxy).service" | sed "s/^/  expected (binaries.exclude): /" || true
done
if grep -aq "KIMAGE worker-2: binaries fetched and verified" "$W/logs/serial-worker-2.log"; then
  pass "worker-2: fetched its binaries at boot from the mirror and verified their digests"
else
  fail "worker-2: no sign of boot-time fetching on its console"
fi
if grep -aq "DIGEST MISMATCH" "$W/logs/serial-worker-3.log"; then
  grep -a "DIGEST MISMATCH" "$W/logs/serial-worker-3.log" | head -2 | sed 's/^/  /'
  pass "worker-3: refused the corrupted containerd from the mirror and said so on its console"
  if report worker-3 | grep -q "unit containerd.service: active"; then fail "worker-3: containerd runs although its binary was refused"; fi
else
  fail "worker-3: no digest-mismatch message on its console"
fi
# --- 9. growth: etcd-4 joined the running cluster by itself and became a voting member -----------------
if [ -f "$W/run/etcd-4.start" ]; then
  EPS4=$EPS,https://$NET.14:2379
  joined=0
  for _ in $(seq 120); do
    if nsx etcdctl --endpoints="https://$NET.11:2379" --cacert "$EPKI/ca.crt" --cert "$KPKI/apiserver-etcd-client.crt" \
      --key "$KPKI/apiserver-etcd-client.key" --command-timeout=5s member list -w simple >"$W/logs/etcd-members-4.txt" 2>&1 &&
      [ "$(grep -c ', started, .*, false$' "$W/logs/etcd-members-4.txt")" = 4 ]; then
      joined=1
      break
    fi
    sleep 5
  done
  cat "$W/logs/etcd-members-4.txt"
  if [ $joined = 1 ] && grep -q ', etcd-4, ' "$W/logs/etcd-members-4.txt"; then
    timing "growth: etcd-4 a voting member $(since "$(cat "$W/run/etcd-4.start")")s after its VM started"
    pass "growth: etcd-4 joined the running cluster by itself and was promoted to a voting member"
    if nsx etcdctl --endpoints="$EPS4" --cacert "$EPKI/ca.crt" --cert "$EPKI/healthcheck-client.crt" \
      --key "$EPKI/healthcheck-client.key" --command-timeout=5s endpoint health 2>&1 | tee "$W/logs/etcd-health-4.txt" &&
      [ "$(grep -c 'is healthy' "$W/logs/etcd-health-4.txt")" = 4 ]; then
      pass "growth: all 4 members healthy over TLS"
    else
      fail "growth: not all 4 members healthy"
    fi
    for _ in $(seq 60); do grep -aq "KIMAGE-REPORT etcd-4 done" "$W/logs/serial-etcd-4.log" && break; sleep 5; done
    if report etcd-4 | grep -q "cloud-init: status: done"; then
      timing "boot etcd-4: console report $(since "$(cat "$W/run/etcd-4.start")")s after start"
      pass "etcd-4: cloud-init finished without errors"
    else
      report etcd-4
      fail "etcd-4: cloud-init did not finish cleanly"
    fi
  else
    report etcd-4 || true
    fail "growth: etcd-4 did not become a voting member within 600s"
  fi
else
  fail "growth: etcd-4 was not booted (the first three never became healthy)"
fi

echo
cat "$TIMINGS"
timing "total: $(since "$T0")s"
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${FAILED[@]}"
  exit 1
fi
echo "vm test: all checks passed"
