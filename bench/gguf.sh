#!/usr/bin/env bash
# GGUF benchmark: GGUF F16 -> SafeTensors F16 and SafeTensors F16 -> GGUF against cp of the same bytes, on the
# ~2.2 GB synthetic model; and Q4_K -> F16 dequantization throughput against gguf.quants.dequantize.
# Prints a markdown report. Usage: bench/gguf.sh [RUNS]   (env: LBRX_BENCH_DIR, LBRX_BENCH_VENV, LBRX_VENV)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
dir=${LBRX_BENCH_DIR:-$root/bench-data}
venv=${LBRX_BENCH_VENV:-$HOME/.cache/lbrx/bench-venv}
refvenv=${LBRX_VENV:-$root/.venv}
lbrx=$root/target/release/lbrx
(cd "$root" && cargo build --release -q -p lbrx-cli)
[ -x "$refvenv/bin/python" ] || "$root/scripts/setup-python.sh" "$refvenv"
mkdir -p "$dir"
[ -f "$dir/m2/model.safetensors.index.json" ] || { "$root/bench/foundation.sh" 1 >/dev/null; }
[ -f "$dir/m2-f16.gguf" ] || "$lbrx" convert --quiet --dtype f16 "$dir/m2" "$dir/m2-f16.gguf"
[ -f "$dir/m2-f16.safetensors" ] || "$lbrx" convert --quiet "$dir/m2-f16.gguf" "$dir/m2-f16.safetensors"
[ -f "$dir/q4k.gguf" ] || "$refvenv/bin/python" "$root/bench/make_q4k.py" "$dir/q4k.gguf" 512

measure() { rm -rf "$dir"/out*; sync; sleep 0.5; /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" >/dev/null; cat "$dir/.time"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A T R
cat "$dir/m2-f16.gguf" "$dir/m2-f16.safetensors" >/dev/null
for ((i = 0; i < runs; i++)); do
  for tool in cp-gguf g2s cp-st s2g; do
    case $tool in
      cp-gguf) out=$(measure cp "$dir/m2-f16.gguf" "$dir/out.gguf") ;;
      g2s) out=$(measure "$lbrx" convert --quiet "$dir/m2-f16.gguf" "$dir/out.safetensors") ;;
      cp-st) out=$(measure cp "$dir/m2-f16.safetensors" "$dir/out.safetensors") ;;
      s2g) out=$(measure "$lbrx" convert --quiet "$dir/m2-f16.safetensors" "$dir/out.gguf") ;;
    esac
    T[$tool]+="${out% *} "; R[$tool]+="${out#* } "
  done
done
med() { echo ${T[$1]} | tr ' ' '\n' | grep . | median; }
rss() { echo ${R[$1]} | tr ' ' '\n' | grep . | sort -n | tail -1; }
size=$(stat -c %s "$dir/m2-f16.gguf")
echo "### GGUF conversion, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "Model: the synthetic Llama-shaped model as F16, $(numfmt --to=si "$size")B; warm cache; median of $runs interleaved runs."
echo
echo "| job | wall (s) | cp of the source (s) | vs cp | peak RSS (MB) |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf "| GGUF F16 -> SafeTensors F16 | %.2f | %.2f | %.2fx | %.0f |\n" "$(med g2s)" "$(med cp-gguf)" "$(echo "$(med g2s) / $(med cp-gguf)" | bc -l)" "$(echo "$(rss g2s) / 1024" | bc -l)"
printf "| SafeTensors F16 -> GGUF F16 | %.2f | %.2f | %.2fx | %.0f |\n" "$(med s2g)" "$(med cp-st)" "$(echo "$(med s2g) / $(med cp-st)" | bc -l)" "$(echo "$(rss s2g) / 1024" | bc -l)"
echo
# Q4_K -> F16
cat "$dir/q4k.gguf" >/dev/null
py=$("$refvenv/bin/python" "$root/bench/make_q4k.py" --time "$dir/q4k.gguf")
py_s=${py% *}; n=${py#* }
ours=()
for ((i = 0; i < runs; i++)); do ours+=("$(measure "$lbrx" convert --quiet --dtype f16 "$dir/q4k.gguf" "$dir/out.safetensors" | cut -d' ' -f1)"); done
our_s=$(printf "%s\n" "${ours[@]}" | median)
(cd "$root" && cargo build --release -q -p lbrx-convert --example dequant_bench)
kern=$("$root/target/release/examples/dequant_bench" "$dir/q4k.gguf" "$runs"); kern_s=${kern% *}
echo "Q4_K -> F16 dequantization of $(numfmt --to=si "$n") weights ($(numfmt --to=si "$(stat -c %s "$dir/q4k.gguf")")B of Q4_K):"
echo
echo "| tool | seconds | Mweights/s | speed-up |"
echo "| --- | ---: | ---: | ---: |"
printf "| gguf.quants.dequantize (numpy, in memory, no file written) | %.2f | %.0f | 1.0x |\n" "$py_s" "$(echo "$n / $py_s / 1000000" | bc -l)"
printf "| lbrx dequantize + F16 encode (in memory, no file written, all cores; \`dequant_bench\` example, median of $runs) | %.2f | %.0f | %.1fx |\n" "$kern_s" "$(echo "$n / $kern_s / 1000000" | bc -l)" "$(echo "$py_s / $kern_s" | bc -l)"
printf "| lbrx convert --dtype f16 (GGUF -> SafeTensors file written, median of $runs) | %.2f | %.0f | %.1fx |\n" "$our_s" "$(echo "$n / $our_s / 1000000" | bc -l)" "$(echo "$py_s / $our_s" | bc -l)"
rm -rf "$dir"/out*
