#!/usr/bin/env bash
# Scaled-weights benchmark: a >= 2 GB bf16 diffusion-transformer checkpoint to FP8 (tensor scales), NVFP4,
# MXFP8 and INT8 (row scales) with lbrx and with convert-to-quant 1.3.4 --simple on CPU, side by side: median
# wall seconds and peak RSS, and whether the files are the same. Prints a markdown report.
# Usage: bench/comfy.sh [RUNS]   (env: LBRX_BENCH_DIR, LBRX_VENV)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
dir=${LBRX_BENCH_DIR:-$root/bench-data}
venv=${LBRX_VENV:-$root/.venv}
lbrx=$root/target/release/lbrx
(cd "$root" && cargo build --release -q -p lbrx-cli)
"$root/scripts/setup-python.sh" "$venv" >/dev/null
mkdir -p "$dir"
src=$dir/dit-bf16.safetensors
[ -f "$src" ] || "$venv/bin/python" "$root/bench/make_dit.py" "$src" --blocks 9
measure() { rm -f "$dir"/cout*; sync; sleep 0.3; /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" >/dev/null 2>&1; cat "$dir/.time"; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
maxof() { tr ' ' '\n' | grep . | sort -n | tail -1; }
declare -A ours theirs T R
ours[fp8]="--quant fp8"; theirs[fp8]=""
ours[nvfp4]="--quant nvfp4"; theirs[nvfp4]="--nvfp4"
ours[mxfp8]="--quant mxfp8"; theirs[mxfp8]="--mxfp8"
ours[int8row]="--quant int8 --scaling row"; theirs[int8row]="--int8 --scaling_mode row"
jobs=(fp8 nvfp4 mxfp8 int8row)
cat "$src" >/dev/null
same=""
for ((i = 0; i < runs; i++)); do
  for job in "${jobs[@]}"; do
    # shellcheck disable=SC2086
    out=$(measure "$venv/bin/convert_to_quant" -i "$src" -o "$dir/cout-c2q.safetensors" --simple --device cpu --save-quant-metadata ${theirs[$job]})
    T[$job-c2q]+="${out% *} "; R[$job-c2q]+="${out#* } "
    [ $i -eq 0 ] && cp "$dir/cout-c2q.safetensors" "$dir/ref-$job.safetensors"
    # shellcheck disable=SC2086
    out=$(measure "$lbrx" convert --quiet --force "$src" "$dir/cout-lbrx.safetensors" ${ours[$job]})
    T[$job-lbrx]+="${out% *} "; R[$job-lbrx]+="${out#* } "
    if [ $i -eq 0 ]; then
      if "$venv/bin/python" "$root/crates/lbrx-cli/tests/oracle/comfy_oracle.py" compare "$dir/ref-$job.safetensors" "$dir/cout-lbrx.safetensors" >/dev/null; then
        same+="$job: same tensors and metadata. "
      else
        same+="$job: DIFFERENT. "
      fi
      rm -f "$dir/ref-$job.safetensors"
    fi
  done
done
rm -f "$dir"/cout*
size=$(du -b "$src" | cut -f1)
echo "Scaled weights, $(awk -v s="$size" 'BEGIN{printf "%.2f", s/1e9}') GB bf16 checkpoint ($(nproc) cores, median of $runs runs; convert-to-quant 1.3.4 --simple --device cpu):"
echo
echo "| job | convert-to-quant s | lbrx s | speed-up | convert-to-quant peak RSS | lbrx peak RSS |"
echo "|---|---:|---:|---:|---:|---:|"
for job in "${jobs[@]}"; do
  tc=$(echo "${T[$job-c2q]}" | median); tl=$(echo "${T[$job-lbrx]}" | median)
  rc=$(echo "${R[$job-c2q]}" | maxof); rl=$(echo "${R[$job-lbrx]}" | maxof)
  echo "| ${ours[$job]} | $tc | $tl | $(awk -v a="$tc" -v b="$tl" 'BEGIN{printf "%.1fx", a/b}') | $((rc / 1024)) MB | $((rl / 1024)) MB |"
done
echo
echo "$same"
