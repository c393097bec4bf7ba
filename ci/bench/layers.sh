#!/usr/bin/env bash
# Layer and seed throughput against the usual tools, on the same ~400 MB of real Go binaries
# (kubectl 1.27-1.33 from the Google Cloud SDK, Debian's etcd and etcdctl).
#
#   layers: kimage's deterministic tar + parallel gzip (examples/layer_bench, level 6)
#           vs `tar -cf - DIR | pigz -6` and `tar -cf - DIR | gzip -6`; plus compressed sizes.
#   seed:   kimage's FAT seed with those files as layers (examples/seed_bench)
#           vs `genisoimage -volid cidata -joliet -rock` (what the VM recipe uses) on the same files.
#
# usage: ci/bench/layers.sh [RUNS]   (needs hyperfine, pigz, gzip, genisoimage; results on stdout and in
#        $KIMAGE_BENCH_OUT, default target/bench/layers.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
out=${KIMAGE_BENCH_OUT:-target/bench/layers.md}
for t in hyperfine pigz gzip tar genisoimage; do
  command -v "$t" >/dev/null || { echo "ci/bench/layers.sh: $t is missing (apt-get install $t)" >&2; exit 1; }
done
shopt -s nullglob
corpus_files=(/usr/lib/google-cloud-sdk/bin/kubectl.1.* /usr/bin/etcd /usr/bin/etcdctl)
[ ${#corpus_files[@]} -ge 3 ] || { echo "ci/bench/layers.sh: corpus binaries not found" >&2; exit 1; }

cargo build --release --locked --example layer_bench --example seed_bench
bin=target/release/examples
work=$(mktemp -d "${TMPDIR:-/tmp}/kimage-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus/bin" "$(dirname "$out")"
cp "${corpus_files[@]}" "$work/corpus/bin/"
bytes=$(du -sb "$work/corpus/bin" | cut -f1)
echo "corpus: ${#corpus_files[@]} files, $bytes bytes; $(nproc) CPUs; runs=$runs"
# Warm the page cache so every contender reads from memory.
cat "$work"/corpus/bin/* >/dev/null

hyperfine --style basic --warmup 1 --runs "$runs" --export-markdown "$work/layers.md" \
  -n "kimage layer (all threads)" "$bin/layer_bench $work/k.tar.gz $work/corpus/bin/*" \
  -n "kimage layer (RAYON_NUM_THREADS=1)" "RAYON_NUM_THREADS=1 $bin/layer_bench $work/k1.tar.gz $work/corpus/bin/*" \
  -n "tar | pigz -6" "tar -cf - -C $work/corpus bin | pigz -6 > $work/pigz.tar.gz" \
  -n "tar | gzip -6" "tar -cf - -C $work/corpus bin | gzip -6 > $work/gzip.tar.gz"

cmp "$work/k.tar.gz" "$work/k1.tar.gz" || { echo "layer differs between 1 and all threads" >&2; exit 1; }
gzip -t "$work/k.tar.gz"
size() { stat -c %s "$1"; }
k=$(size "$work/k.tar.gz"); p=$(size "$work/pigz.tar.gz"); g=$(size "$work/gzip.tar.gz")
sizes=$(printf '| output | bytes | vs pigz -6 |\n|---|---:|---:|\n| kimage (level 6) | %s | %s |\n| pigz -6 | %s | 1.000 |\n| gzip -6 | %s | %s |\n' \
  "$k" "$(awk -v a="$k" -v b="$p" 'BEGIN{printf "%.3f", a/b}')" "$p" \
  "$g" "$(awk -v a="$g" -v b="$p" 'BEGIN{printf "%.3f", a/b}')")

# Seed: the same binaries as layers/<name>.tar.gz plus the three NoCloud files.
seed_dir="$work/seed"
mkdir -p "$seed_dir/layers"
printf '#cloud-config\n' > "$seed_dir/user-data"
printf 'instance-id: bench\n' > "$seed_dir/meta-data"
printf 'version: 2\n' > "$seed_dir/network-config"
args=(user-data="$seed_dir/user-data" meta-data="$seed_dir/meta-data" network-config="$seed_dir/network-config")
for f in "$work"/corpus/bin/*; do
  ln "$f" "$seed_dir/layers/$(basename "$f").tar.gz"
  args+=("layers/$(basename "$f").tar.gz=$f")
done
hyperfine --style basic --warmup 1 --runs "$runs" --export-markdown "$work/seed.md" \
  -n "kimage seed.img (write + fsync)" "$bin/seed_bench $work/seed.img ${args[*]}" \
  -n "kimage seed digest only" "$bin/seed_bench - ${args[*]}" \
  -n "genisoimage -joliet -rock" "genisoimage -quiet -volid cidata -joliet -joliet-long -rock -o $work/seed.iso $seed_dir"

{
  echo "## Layers: $bytes bytes of Go binaries, $(nproc) CPUs"
  echo
  cat "$work/layers.md"
  echo
  echo "$sizes"
  echo
  echo "## Seed image with the same files as layers"
  echo
  cat "$work/seed.md"
  echo
  echo "seed.img $(size "$work/seed.img") bytes; seed.iso $(size "$work/seed.iso") bytes"
} | tee "$out"
