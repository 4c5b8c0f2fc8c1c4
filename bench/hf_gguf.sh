#!/usr/bin/env bash
# HF directory -> GGUF benchmark: lbrx convert against llama.cpp's convert_hf_to_gguf.py (llama-cpp-python 0.3.36
# sdist) for F16 and Q8_0 output, on a ~2.5 GB Llama-3-shaped bf16 model with a real Llama 3 tokenizer
# (tests/oracle/make_hf_model.py). Also checks the outputs are byte-identical. Prints a markdown report.
# Usage: bench/hf_gguf.sh [RUNS]   (env: LBRX_BENCH_DIR, LBRX_VENV, LBRX_LLAMA_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
dir=${LBRX_BENCH_DIR:-$root/bench-data}
venv=${LBRX_VENV:-$root/.venv}
src=${LBRX_LLAMA_DIR:-$HOME/.cache/lbrx/llama-src}/llama_cpp_python-0.3.36/vendor/llama.cpp
lbrx=$root/target/release/lbrx
(cd "$root" && cargo build --release -q -p lbrx-cli)
"$root/scripts/setup-python.sh" "$venv" >/dev/null
LBRX_VENV=$venv "$root/scripts/build-llama-tools.sh" llama-gguf-split >/dev/null
model=$dir/hf-llama3-2.5g
mkdir -p "$dir"
[ -f "$model/config.json" ] || "$venv/bin/python" "$root/crates/lbrx-cli/tests/oracle/make_hf_model.py" llama3 "$model" \
  --vocab-dir "$src/models" --layers 16 --hidden 2048 --inter 5632 --heads 16 --kv-heads 4 --max-shard-size 1000000000

measure() { rm -f "$dir"/hfout*; sync; sleep 0.5; /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" >/dev/null 2>&1; cat "$dir/.time"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A T R same
cat "$model"/*.safetensors >/dev/null
for ((i = 0; i < runs; i++)); do
  for job in lbrx-f16 py-f16 lbrx-q8 py-q8; do
    case $job in
      lbrx-f16) out=$(measure "$lbrx" convert --quiet --dtype f16 "$model" "$dir/hfout.gguf") ;;
      py-f16) out=$(measure "$venv/bin/python" "$src/convert_hf_to_gguf.py" "$model" --outfile "$dir/hfout.gguf" --outtype f16) ;;
      lbrx-q8) out=$(measure "$lbrx" convert --quiet --quant Q8_0 "$model" "$dir/hfout.gguf") ;;
      py-q8) out=$(measure "$venv/bin/python" "$src/convert_hf_to_gguf.py" "$model" --outfile "$dir/hfout.gguf" --outtype q8_0) ;;
    esac
    T[$job]+="${out% *} "; R[$job]+="${out#* } "
  done
done
# identical outputs
for t in f16 q8_0; do
  "$venv/bin/python" "$src/convert_hf_to_gguf.py" "$model" --outfile "$dir/hfout-ref.gguf" --outtype $t >/dev/null 2>&1
  if [ $t = f16 ]; then "$lbrx" convert --quiet --dtype f16 "$model" "$dir/hfout-ours.gguf" --force; else "$lbrx" convert --quiet --quant Q8_0 "$model" "$dir/hfout-ours.gguf" --force; fi
  cmp -s "$dir/hfout-ref.gguf" "$dir/hfout-ours.gguf" && same[$t]=yes || same[$t]=NO
  rm -f "$dir/hfout-ref.gguf" "$dir/hfout-ours.gguf"
done
med() { echo ${T[$1]} | tr ' ' '\n' | grep . | median; }
rss() { echo ${R[$1]} | tr ' ' '\n' | grep . | sort -n | tail -1; }
size=$(du -cb "$model"/*.safetensors | tail -1 | cut -f1)
echo "### HF directory -> GGUF, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "Model: Llama-3-shaped bf16 (16 layers, hidden 2048, vocab 128256, real Llama 3 tokenizer), $(numfmt --to=si "$size")B in 3 shards;"
echo "warm page cache; median of $runs interleaved runs; peak RSS from /usr/bin/time (max over runs)."
echo
echo "| output | tool | wall (s) | peak RSS (MB) | speed-up | same bytes |"
echo "| --- | --- | ---: | ---: | ---: | --- |"
for t in f16 q8; do
  [ $t = f16 ] && name=F16 || name=Q8_0
  [ $t = f16 ] && k=f16 || k=q8_0
  printf "| %s | convert_hf_to_gguf.py | %.2f | %.0f | 1.0x | |\n" $name "$(med py-$t)" "$(echo "$(rss py-$t) / 1024" | bc -l)"
  printf "| %s | lbrx convert | %.2f | %.0f | %.1fx | %s |\n" $name "$(med lbrx-$t)" "$(echo "$(rss lbrx-$t) / 1024" | bc -l)" "$(echo "$(med py-$t) / $(med lbrx-$t)" | bc -l)" "${same[$k]:-?}"
done
