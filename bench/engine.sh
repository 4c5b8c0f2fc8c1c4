#!/usr/bin/env bash
# Engine benchmark: the jobs of docs/BENCHMARKS.md (copy, bf16->f16, HF -> GGUF F16, Q4_K_M quantize, MLX 4-bit)
# run with this checkout's lbrx and with the lbrx of BASE (default 2605d9e, the commit before the engine
# redesign), interleaved in one run: median wall seconds and peak RSS. Prints a markdown report.
# Usage: bench/engine.sh [RUNS] [BASE]   (env: LBRX_BENCH_DIR, LBRX_VENV, LBRX_LLAMA_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
base=${2:-2605d9e}
dir=${LBRX_BENCH_DIR:-$root/bench-data}
venv=${LBRX_VENV:-$root/.venv}
vocab=${LBRX_LLAMA_DIR:-$HOME/.cache/lbrx/llama-src}/llama_cpp_python-0.3.36/vendor/llama.cpp/models
new=$root/target/release/lbrx
(cd "$root" && cargo build --release -q -p lbrx-cli)
# the base build: a worktree and a target directory of its own, outside the checkout
wt=${TMPDIR:-/tmp}/lbrx-bench-base-$base
old=${TMPDIR:-/tmp}/lbrx-bench-base-target/release/lbrx
[ -d "$wt" ] || git -C "$root" worktree add -f "$wt" "$base" >/dev/null
(cd "$wt" && CARGO_TARGET_DIR=${TMPDIR:-/tmp}/lbrx-bench-base-target cargo build --release -q -p lbrx-cli)
"$root/scripts/setup-python.sh" "$venv" >/dev/null
mkdir -p "$dir"
syn=$dir/synthetic-2.3g
[ -f "$syn/config.json" ] || "$venv/bin/python" "$root/bench/make_synthetic.py" "$syn" --layers 22 >/dev/null
hf=$dir/hf-llama3-2.5g
[ -f "$hf/config.json" ] || "$venv/bin/python" "$root/crates/lbrx-cli/tests/oracle/make_hf_model.py" llama3 "$hf" \
  --vocab-dir "$vocab" --layers 16 --hidden 2048 --inter 5632 --heads 16 --kv-heads 4 --max-shard-size 1000000000
f16=$dir/hf-f16.gguf
[ -f "$f16" ] || "$new" convert --quiet --dtype f16 "$hf" "$f16"

measure() { rm -rf "$dir"/eout*; sync; sleep 0.3; /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" >/dev/null 2>&1; cat "$dir/.time"; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
maxof() { tr ' ' '\n' | grep . | sort -n | tail -1; }
jobs=(copy f16 hfgguf q4km mlx4)
declare -A T R label
label[copy]="copy (SafeTensors dir, 2.3 GB)"
label[f16]="bf16->f16 (SafeTensors dir, 2.3 GB)"
label[hfgguf]="HF -> GGUF F16 (2.5 GB Llama 3)"
label[q4km]="Q4_K_M quantize (F16 GGUF)"
label[mlx4]="MLX 4-bit (2.5 GB Llama 3)"
run_job() { # bin job
  case $2 in
    copy) measure "$1" convert --quiet "$syn" "$dir/eout" ;;
    f16) measure "$1" convert --quiet --dtype f16 "$syn" "$dir/eout" ;;
    hfgguf) measure "$1" convert --quiet --dtype f16 "$hf" "$dir/eout.gguf" ;;
    q4km) measure "$1" quantize --quiet "$f16" "$dir/eout.gguf" Q4_K_M ;;
    mlx4) measure "$1" convert --quiet "$hf" "$dir/eout" --to mlx --quantize --q-bits 4 --q-group-size 64 ;;
  esac
}
cat "$syn"/*.safetensors "$hf"/*.safetensors "$f16" >/dev/null
for ((i = 0; i < runs; i++)); do
  for job in "${jobs[@]}"; do
    for who in old new; do
      bin=$old; [ $who = new ] && bin=$new
      out=$(run_job "$bin" "$job")
      T[$job-$who]+="${out% *} "; R[$job-$who]+="${out#* } "
    done
  done
done
# the outputs of both builds are the same bytes
same=yes
for job in "${jobs[@]}"; do
  for who in old new; do
    bin=$old; [ $who = new ] && bin=$new
    run_job "$bin" "$job" >/dev/null
    rm -rf "$dir/cmp-$who"; mkdir -p "$dir/cmp-$who"; mv "$dir"/eout* "$dir/cmp-$who/"
  done
  diff -r -x .lbrx_workspace.json "$dir/cmp-old" "$dir/cmp-new" >/dev/null || { same=NO; echo "outputs differ: $job" >&2; }
done
rm -rf "$dir"/cmp-* "$dir"/eout*

echo "### Engine redesign: $base vs $(git -C "$root" rev-parse --short HEAD), $(nproc) cores, $(date +%F)"
echo
echo "Median of $runs interleaved runs (old, new, old, new ...); wall seconds; peak RSS (max over runs, MB)."
echo "Outputs of both builds byte-identical: **$same**."
echo
echo "| job | wall before (s) | wall after (s) | after/before | RSS before (MB) | RSS after (MB) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for job in "${jobs[@]}"; do
  a=$(echo "${T[$job-old]}" | median); b=$(echo "${T[$job-new]}" | median)
  ra=$(echo "${R[$job-old]}" | maxof); rb=$(echo "${R[$job-new]}" | maxof)
  printf '| %s | %.2f | %.2f | %.2fx | %d | %d |\n' "${label[$job]}" "$a" "$b" "$(echo "$b / $a" | bc -l)" $((ra / 1024)) $((rb / 1024))
done
