#!/usr/bin/env bash
# PyTorch reader benchmark: `lbrx convert pytorch_model.bin model.safetensors` vs torch.load +
# safetensors.torch.save_file (plain, and with torch's mmap loading), on a seeded >= 2 GB bf16 checkpoint written
# by torch.save; wall time and peak RSS (/usr/bin/time), warm page cache, interleaved runs, medians. Prints a
# markdown report for docs/BENCHMARKS.md; also checks that every tool wrote the same bytes.
#
# Usage: bench/pytorch.sh [RUNS] [GB]      (env: LBRX_BENCH_DIR, LBRX_BENCH_VENV)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
gb=${2:-2.2}
dir=${LBRX_BENCH_DIR:-$root/bench-data}
venv=${LBRX_BENCH_VENV:-$HOME/.cache/lbrx/bench-venv}
lbrx=$root/target/release/lbrx
mkdir -p "$dir"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, safetensors" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$root/bench/requirements.txt"
fi
py=$venv/bin/python
(cd "$root" && cargo build --release -q -p lbrx-cli)
src=$dir/pytorch_model.bin
[ -f "$src" ] || "$py" "$root/bench/py_torch_convert.py" --make "$src" "$gb"
size=$(stat -c %s "$src")
cat "$src" > /dev/null
measure() { # OUT CMD...: seconds and peak RSS (KiB) of CMD
  local out=$1; shift
  rm -f "$out"; sync; sleep 0.5
  /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" > /dev/null 2> "$dir/.err" || { cat "$dir/.err" >&2; return 1; }
  cat "$dir/.time"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A T R
for ((i = 0; i < runs; i++)); do
  for tool in lbrx torch torch-mmap; do
    out=$dir/$tool.safetensors
    case $tool in
      lbrx) r=$(measure "$out" "$lbrx" convert "$src" "$out" --quiet) ;;
      torch) r=$(measure "$out" "$py" "$root/bench/py_torch_convert.py" "$src" "$out") ;;
      torch-mmap) r=$(measure "$out" "$py" "$root/bench/py_torch_convert.py" "$src" "$out" --mmap) ;;
    esac
    T[$tool]+="${r% *} "; R[$tool]+="${r#* } "
  done
done
cmp "$dir/lbrx.safetensors" "$dir/torch.safetensors"
cmp "$dir/lbrx.safetensors" "$dir/torch-mmap.safetensors"
med() { echo ${T[$1]} | tr ' ' '\n' | grep . | median; }
rss() { echo ${R[$1]} | tr ' ' '\n' | grep . | sort -n | tail -1; }
base=$(med lbrx)
echo "### pytorch_model.bin -> SafeTensors, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(date -u +%Y-%m-%d)"
echo
echo "Checkpoint: torch.save (zip format) of a seeded Llama-shaped bf16 state dict, $(numfmt --to=si "$size")B ($size bytes);"
echo "warm page cache; median of $runs interleaved runs; wall seconds; peak RSS from /usr/bin/time (max over runs). All"
echo "three outputs are byte-identical."
echo
echo "| tool | wall (s) | vs lbrx | peak RSS (MB) |"
echo "| --- | ---: | ---: | ---: |"
for tool in lbrx torch torch-mmap; do
  case $tool in
    lbrx) label="lbrx convert" ;;
    torch) label="torch.load(weights_only=True) + save_file" ;;
    torch-mmap) label="torch.load(weights_only=True, mmap=True) + save_file" ;;
  esac
  t=$(med $tool)
  echo "| $label | $t | $(awk -v a="$t" -v b="$base" 'BEGIN {printf "%.1fx", a / b}') | $(( $(rss $tool) / 1024 )) |"
done
