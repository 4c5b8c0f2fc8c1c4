#!/usr/bin/env bash
# Quantization benchmark: lbrx quantize against llama-quantize (llama-cpp-python 0.3.36 sdist, same machine,
# same thread count, one run each side by side) for F16 -> Q8_0, Q6_K, Q4_K_M, IQ4_XS, IQ3_S, IQ3_M (recipes
# that need no importance matrix; override with LBRX_BENCH_RECIPES) on the 2.5 GB F16 GGUF of the
# HF -> GGUF benchmark model, checking the outputs are byte-identical; and against the Python gguf package's
# quantizer for every type it implements (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, TQ1_0, TQ2_0, MXFP4; it has no K-quant
# or i-quant quantizer). Prints a markdown report.
# Usage: bench/quantize.sh   (env: LBRX_BENCH_DIR, LBRX_VENV, LBRX_LLAMA_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${LBRX_BENCH_DIR:-$root/bench-data}
venv=${LBRX_VENV:-$root/.venv}
bin=$(LBRX_VENV=$venv "$root/scripts/build-llama-tools.sh" llama-quantize)
lbrx=$root/target/release/lbrx
(cd "$root" && cargo build --release -q -p lbrx-cli)
threads=$(nproc)
[ -f "$dir/hf-llama3-2.5g/config.json" ] || LBRX_VENV=$venv "$root/bench/hf_gguf.sh" 1 >/dev/null
[ -f "$dir/hf-f16.gguf" ] || "$lbrx" convert --quiet --dtype f16 "$dir/hf-llama3-2.5g" "$dir/hf-f16.gguf"
in=$dir/hf-f16.gguf
cat "$in" >/dev/null
t() { /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" >/dev/null 2>&1; cat "$dir/.time"; }
echo "### Quantization, $threads cores, $(date -u +%Y-%m-%d)"
echo
echo "Input: $(numfmt --to=si "$(stat -c %s "$in")")B F16 GGUF (Llama-3-shaped, 1.25 B weights); $threads threads for both tools;"
echo "warm page cache; one run each, side by side; peak RSS from /usr/bin/time."
echo
echo "| recipe | llama-quantize (s) | lbrx quantize (s) | ratio | llama-quantize RSS (MB) | lbrx RSS (MB) | same bytes |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
for r in ${LBRX_BENCH_RECIPES:-Q8_0 Q6_K Q4_K_M IQ4_XS IQ3_S IQ3_M}; do
  ref=$(t "$bin/llama-quantize" "$in" "$dir/qref.gguf" $r "$threads")
  ours=$(t "$lbrx" quantize "$in" "$dir/qours.gguf" $r -q --force --threads "$threads")
  cmp -s "$dir/qref.gguf" "$dir/qours.gguf" && same=yes || same=NO
  printf "| %s | %.2f | %.2f | %.2f | %.0f | %.0f | %s |\n" $r "${ref% *}" "${ours% *}" \
    "$(echo "${ours% *} / ${ref% *}" | bc -l)" "$(echo "${ref#* } / 1024" | bc -l)" "$(echo "${ours#* } / 1024" | bc -l)" $same
  rm -f "$dir/qref.gguf" "$dir/qours.gguf"
done
echo
echo "Against the Python \`gguf\` package (\`gguf.quants.quantize\`, numpy, in memory, no file written) on the first"
echo "~200 M weights (token_embd), and lbrx on the same weights in memory (\`quant_bench\` example, median of 3),"
echo "and lbrx writing the whole quantized file (\`lbrx quantize --pure\`, every matrix in that type):"
echo
echo "| type | gguf.quants (M weights/s) | lbrx in memory (M weights/s) | speed-up | lbrx quantize --pure, file written (M weights/s) |"
echo "| --- | ---: | ---: | ---: | ---: |"
(cd "$root" && cargo build --release -q -p lbrx-convert --example quant_bench)
for r in ${LBRX_BENCH_PY_TYPES:-Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 TQ1_0 TQ2_0 MXFP4}; do
  py=$("$venv/bin/python" "$root/bench/quant_py.py" "$in" $r 200000000)
  mem=$("$root/target/release/examples/quant_bench" "$in" $r 200000000 3)
  recipe=$r; [ $r = MXFP4 ] && recipe=MXFP4_MOE   # the recipe whose --pure is every matrix in that type
  ours=$(t "$lbrx" quantize "$in" "$dir/qours.gguf" $recipe -q --force --pure --threads "$threads")
  rm -f "$dir/qours.gguf"
  n=1250000000
  pr=$(echo "${py#* } / ${py% *} / 1000000" | bc -l); mr=$(echo "${mem#* } / ${mem% *} / 1000000" | bc -l)
  lr=$(echo "$n / ${ours% *} / 1000000" | bc -l)
  printf "| %s | %.1f | %.0f | %.0fx | %.0f |\n" $r "$pr" "$mr" "$(echo "$mr / $pr" | bc -l)" "$lr"
done
