#!/usr/bin/env bash
# Creates one libvirt VM per node of a kimage build with plain virt-install, reading out/manifest.json.
# Every artifact it uses is named by the manifest and checked against the manifest's sha256 first.
#
#   seed mode (profile layers.from: seed, the default): attaches kimage's own NoCloud seed
#     (out/nodes/<name>/seed.img: user-data, meta-data, network-config and the node's layers).
#   cloud-init mode (layers.from: url or image): virt-install --cloud-init builds a cidata disk from
#     the node's user-data, meta-data and network-config; the node fetches its layers itself.
#
# Needs virt-install (Debian: virtinst) and python3, which virt-install itself runs on.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: create-vms.sh --base-image QCOW2 [options]

  --out DIR            kimage output directory (default: ./out)
  --base-image PATH    cloud image every node boots (qcow2 with cloud-init), e.g. Debian 12 genericcloud
  --mode MODE          seed (default) or cloud-init; must match the profile's layers.from (see above)
  --pool-dir DIR       where root disks and seed copies go (default: /var/lib/libvirt/images)
  --network SPEC       virt-install --network value (default: network=default)
  --connect URI        libvirt URI (default: $LIBVIRT_DEFAULT_URI or qemu:///system)
  --os-variant NAME    osinfo name of the base image (default: linux2022)
  --disk-gb N          root disk size in GiB (default: 20)
  --memory ROLE=MIB    memory for a role (repeatable; defaults: control-plane=4096 worker=4096
                       etcd=2048 load-balancer=1024)
  --vcpus ROLE=N       vCPUs for a role (repeatable; defaults: 2, load-balancer=1)
  --mac NODE=MAC       MAC address of a node's NIC: give the same as the node's `mac` in the profile
  --node NAME          only this node (repeatable; default: every node in the manifest)
  --print-xml          print the domain XML instead of defining the VMs (virt-install --print-xml)
  --dry-run            print the virt-install commands instead of running them
EOF
}

die() {
    printf 'create-vms.sh: %s\n' "$*" >&2
    exit 1
}

out=./out
base_image=
mode=seed
pool_dir=/var/lib/libvirt/images
network=network=default
connect=${LIBVIRT_DEFAULT_URI:-qemu:///system}
os_variant=linux2022
disk_gb=20
print_xml=0
dry_run=0
declare -A memory=([control-plane]=4096 [worker]=4096 [etcd]=2048 [load-balancer]=1024)
declare -A vcpus=([control-plane]=2 [worker]=2 [etcd]=2 [load-balancer]=1)
declare -A macs=()
declare -a only=()

while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --base-image) base_image=${2:?--base-image needs a path}; shift 2 ;;
    --mode) mode=${2:?--mode needs seed or cloud-init}; shift 2 ;;
    --pool-dir) pool_dir=${2:?--pool-dir needs a directory}; shift 2 ;;
    --network) network=${2:?--network needs a value}; shift 2 ;;
    --connect) connect=${2:?--connect needs a URI}; shift 2 ;;
    --os-variant) os_variant=${2:?--os-variant needs a name}; shift 2 ;;
    --disk-gb) disk_gb=${2:?--disk-gb needs a number}; shift 2 ;;
    --memory) memory[${2%%=*}]=${2#*=}; shift 2 ;;
    --vcpus) vcpus[${2%%=*}]=${2#*=}; shift 2 ;;
    --mac) macs[${2%%=*}]=${2#*=}; shift 2 ;;
    --node) only+=("${2:?--node needs a node name}"); shift 2 ;;
    --print-xml) print_xml=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
done

case "$mode" in
seed | cloud-init) ;;
*) die "--mode must be seed or cloud-init, not $mode" ;;
esac
[ -n "$base_image" ] || { usage >&2; die "--base-image is required"; }
[ -f "$base_image" ] || die "base image $base_image does not exist"
base_image=$(realpath "$base_image")
out=$(realpath "$out")
manifest="$out/manifest.json"
[ -f "$manifest" ] || die "$manifest not found: run kimage build --all --out $out first"
command -v virt-install >/dev/null || die "virt-install is not installed (Debian/Ubuntu: apt-get install virtinst)"
command -v python3 >/dev/null || die "python3 is not installed"

# One tab-separated line per node: name, role, then path and sha256 of user-data, meta-data,
# network-config and seed (paths relative to the output directory, as the manifest gives them).
nodes=$(python3 - "$manifest" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(m["cluster"])
for name, n in sorted(m["nodes"].items()):
    row = [name, n["role"]]
    for key in ("user_data", "meta_data", "network_config", "seed"):
        row += [n[key]["path"], n[key]["sha256"]]
    print("\t".join(row))
PY
)
cluster=$(head -n1 <<<"$nodes")

# Refuses an artifact that is not what the manifest says (a half-copied or stale out/ directory).
verify() { # path sha256
    local actual
    [ -f "$1" ] || die "$1 is missing (named in $manifest)"
    actual=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$actual" = "$2" ] || die "$1: sha256 $actual, but the manifest says $2; rebuild with kimage build"
}

run() {
    if [ "$dry_run" = 1 ]; then
        printf '%q ' "$@"
        printf '\n'
    else
        "$@"
    fi
}

mkdir -p "$pool_dir"
count=0
while IFS=$'\t' read -r name role ud ud_sha md md_sha nc nc_sha seed seed_sha; do
    if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qxF -- "$name"; then
        continue
    fi
    domain="$cluster-$name"
    root="$pool_dir/$domain.qcow2"
    net="$network,model=virtio"
    if [ -n "${macs[$name]:-}" ]; then
        net="$net,mac=${macs[$name]}"
    fi
    args=(
        --connect "$connect"
        --name "$domain"
        --memory "${memory[$role]:-2048}"
        --vcpus "${vcpus[$role]:-2}"
        --import
        --os-variant "$os_variant"
        # A copy-on-write root disk over the base image; an existing one is reused (keeps etcd data).
        --disk "path=$root,size=$disk_gb,backing_store=$base_image,backing_format=qcow2,format=qcow2,bus=virtio"
        --network "$net"
        # No SSH: kimage-apply reports on the serial console (lines starting "KIMAGE <node>:").
        --graphics none
        --console "pty,target.type=serial"
        --autostart
        --noautoconsole
    )
    if [ "$mode" = seed ]; then
        verify "$out/$seed" "$seed_sha"
        # A private copy libvirt may relabel; 0600 because the seed carries the node's secrets.
        copy="$pool_dir/$domain-seed-${seed_sha:0:12}.img"
        install -m 0600 "$out/$seed" "$copy"
        args+=(--disk "path=$copy,device=disk,format=raw,bus=virtio,readonly=on")
    else
        for f in "$ud:$ud_sha" "$md:$md_sha" "$nc:$nc_sha"; do
            verify "$out/${f%%:*}" "${f#*:}"
        done
        case "$out" in *,*) die "$out contains a comma, which --cloud-init cannot take in a path" ;; esac
        args+=(--cloud-init "user-data=$out/$ud,meta-data=$out/$md,network-config=$out/$nc")
    fi
    if [ "$print_xml" = 1 ]; then
        args+=(--print-xml)
    fi
    run virt-install "${args[@]}"
    count=$((count + 1))
done < <(tail -n +2 <<<"$nodes")

[ "$count" -gt 0 ] || die "no node matched --node ${only[*]}"
if [ "$print_xml" = 0 ] && [ "$dry_run" = 0 ]; then
    printf 'create-vms.sh: %d VMs of cluster %s defined and started; watch one with: virsh console %s-NODE\n' \
        "$count" "$cluster" "$cluster" >&2
fi
