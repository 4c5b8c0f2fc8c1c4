#!/usr/bin/env bash
# ONNX / TensorFlow / Keras readers: `lbrx convert SRC out.safetensors` (read every tensor and write the file)
# vs the reference package only reading every tensor into numpy (onnx.load + numpy_helper.to_array,
# tf.train.load_checkpoint().get_tensor, h5py), on seeded float32 files of MB megabytes; warm page cache, median
# of RUNS interleaved runs, wall seconds and peak RSS (/usr/bin/time). Prints a markdown table.
#
# Usage: bench/formats.sh [RUNS] [MB]      (env: LBRX_BENCH_DIR, LBRX_FORMATS_PYTHON)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
mb=${2:-1024}
dir=${LBRX_BENCH_DIR:-$root/bench-data}/formats
py=${LBRX_FORMATS_PYTHON:-$root/.venv-tf/bin/python}
[ -x "$py" ] || "$root/scripts/setup-python.sh" "$root/.venv-tf" "$root/scripts/requirements-formats.txt"
lbrx=$root/target/release/lbrx
mkdir -p "$dir"
(cd "$root" && cargo build --release -q -p lbrx-cli)
declare -A SRC=([onnx]=$dir/model.onnx [onnx-external]=$dir/ext/model.onnx [tf]=$dir/ckpt/ckpt [h5]=$dir/model.h5)
mkdir -p "$dir/ext" "$dir/ckpt"
for k in onnx onnx-external tf h5; do
  s=${SRC[$k]}
  [ -e "$s" ] || [ -e "$s.index" ] || "$py" "$root/bench/formats_py.py" make "$k" "$s" "$mb"
done
measure() { # CMD...: seconds and peak RSS (KiB)
  sync; sleep 0.5
  /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" > /dev/null 2> "$dir/.err" || { cat "$dir/.err" >&2; return 1; }
  cat "$dir/.time"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "### ONNX / TensorFlow / Keras -> SafeTensors, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "Seeded float32 files of ${mb} MB; lbrx reads and writes the SafeTensors file, the reference only reads every"
echo "tensor into numpy; warm page cache, median of $runs interleaved runs, peak RSS the max over runs."
echo
echo "| source | lbrx convert (s) | lbrx RSS (MB) | reference read (s) | reference RSS (MB) | reference / lbrx |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for k in onnx onnx-external tf h5; do
  s=${SRC[$k]}
  cat "$dir"/* "$dir"/*/* > /dev/null 2>&1 || true
  lt=(); lr=(); pt=(); pr=()
  for ((i = 0; i < runs; i++)); do
    rm -f "$dir/out.safetensors"
    r=$(measure "$lbrx" convert "$s" "$dir/out.safetensors" --quiet --force); lt+=("${r% *}"); lr+=("${r#* }")
    r=$(measure "$py" "$root/bench/formats_py.py" read "$k" "$s"); pt+=("${r% *}"); pr+=("${r#* }")
  done
  l=$(printf '%s\n' "${lt[@]}" | median); p=$(printf '%s\n' "${pt[@]}" | median)
  lm=$(printf '%s\n' "${lr[@]}" | sort -n | tail -1); pm=$(printf '%s\n' "${pr[@]}" | sort -n | tail -1)
  printf '| %s | %.2f | %d | %.2f | %d | %.1fx |\n' "$k" "$l" $((lm / 1024)) "$p" $((pm / 1024)) \
    "$(echo "$p / $l" | bc -l)"
done
rm -f "$dir/out.safetensors"
