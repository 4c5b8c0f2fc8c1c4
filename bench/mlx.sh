#!/usr/bin/env bash
# HF directory -> MLX 4-bit (group 64) benchmark: lbrx convert --to mlx -q against mlx_lm.convert --quiet (mlx_lm 0.32.2,
# mlx 0.32.4 CPU) on the ~2.5 GB Llama-3-shaped bf16 model of bench/hf_gguf.sh. Also checks that the outputs hold the
# same tensors and config (tests/oracle/mlx_compare.py). Prints a markdown report.
# Usage: bench/mlx.sh [RUNS]   (env: LBRX_BENCH_DIR, LBRX_VENV, LBRX_MLX_VENV, LBRX_LLAMA_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
dir=${LBRX_BENCH_DIR:-$root/bench-data}
venv=${LBRX_VENV:-$root/.venv}
mlx_venv=${LBRX_MLX_VENV:-$root/.venv-mlx}
src=${LBRX_LLAMA_DIR:-$HOME/.cache/lbrx/llama-src}/llama_cpp_python-0.3.36/vendor/llama.cpp
lbrx=$root/target/release/lbrx
(cd "$root" && cargo build --release -q -p lbrx-cli)
"$root/scripts/setup-python.sh" "$venv" >/dev/null
"$root/scripts/setup-python.sh" "$mlx_venv" "$root/scripts/requirements-mlx.txt" >/dev/null
LBRX_VENV=$venv "$root/scripts/build-llama-tools.sh" llama-gguf-split >/dev/null
model=$dir/hf-llama3-2.5g
mkdir -p "$dir"
[ -f "$model/config.json" ] || "$venv/bin/python" "$root/crates/lbrx-cli/tests/oracle/make_hf_model.py" llama3 "$model" \
  --vocab-dir "$src/models" --layers 16 --hidden 2048 --inter 5632 --heads 16 --kv-heads 4 --max-shard-size 1000000000

measure() { rm -rf "$dir"/mlxout*; sync; sleep 0.5; /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" >/dev/null 2>&1; cat "$dir/.time"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A T R
cat "$model"/*.safetensors >/dev/null
for ((i = 0; i < runs; i++)); do
  for job in lbrx py; do
    case $job in
      lbrx) out=$(measure "$lbrx" convert "$model" "$dir/mlxout" --to mlx -q --q-bits 4 --q-group-size 64 --quiet) ;;
      py) out=$(measure "$mlx_venv/bin/python" -m mlx_lm convert --hf-path "$model" --mlx-path "$dir/mlxout" -q --q-bits 4 --q-group-size 64) ;;
    esac
    T[$job]+="${out% *} "; R[$job]+="${out#* } "
  done
done
rm -rf "$dir"/mlxout*
"$mlx_venv/bin/python" -m mlx_lm convert --hf-path "$model" --mlx-path "$dir/mlxout-ref" -q --q-bits 4 --q-group-size 64 >/dev/null 2>&1
"$lbrx" convert "$model" "$dir/mlxout-ours" --to mlx -q --q-bits 4 --q-group-size 64 --quiet
same=$("$mlx_venv/bin/python" "$root/crates/lbrx-cli/tests/oracle/mlx_compare.py" "$dir/mlxout-ours" "$dir/mlxout-ref" |
  "$mlx_venv/bin/python" -c 'import json,sys; r=json.load(sys.stdin); print("yes" if not (r["tensors"] or r["config"] or r["index"]) else "NO")')
rm -rf "$dir"/mlxout*
med() { echo ${T[$1]} | tr ' ' '\n' | grep . | median; }
rss() { echo ${R[$1]} | tr ' ' '\n' | grep . | sort -n | tail -1; }
size=$(du -cb "$model"/*.safetensors | tail -1 | cut -f1)
echo "### HF directory -> MLX 4-bit (group 64), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "Model: Llama-3-shaped bf16 (16 layers, hidden 2048, vocab 128256), $(numfmt --to=si "$size")B in 3 shards;"
echo "warm page cache; median of $runs interleaved runs; peak RSS from /usr/bin/time (max over runs)."
echo
echo "| tool | wall (s) | peak RSS (MB) | speed-up | same tensors and config |"
echo "| --- | ---: | ---: | ---: | --- |"
printf "| mlx_lm.convert --quiet | %.2f | %.0f | 1.0x | |\n" "$(med py)" "$(echo "$(rss py) / 1024" | bc -l)"
printf "| lbrx convert --to mlx -q | %.2f | %.0f | %.1fx | %s |\n" "$(med lbrx)" "$(echo "$(rss lbrx) / 1024" | bc -l)" "$(echo "$(med py) / $(med lbrx)" | bc -l)" "$same"
