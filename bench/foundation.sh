#!/usr/bin/env bash
# Foundation benchmark: lbrx convert (copy, bf16->f16) vs cp and vs the Python safetensors route, on sharded
# bf16 models of ~1.1 GB, ~2.2 GB and ~3.4 GB; peak RSS from /usr/bin/time -v; and the 3.4 GB model converted
# inside a 1 GiB memory cgroup. Prints a markdown report (paste it into docs/BENCHMARKS.md).
#
# Usage: bench/foundation.sh [RUNS]      (env: LBRX_BENCH_DIR, LBRX_BENCH_VENV)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
dir=${LBRX_BENCH_DIR:-$root/bench-data}
venv=${LBRX_BENCH_VENV:-$HOME/.cache/lbrx/bench-venv}
lbrx=$root/target/release/lbrx
mkdir -p "$dir"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, safetensors, huggingface_hub, ml_dtypes" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$root/bench/requirements.txt"
fi
py=$venv/bin/python
(cd "$root" && cargo build --release -q -p lbrx-cli)

gen() { # name layers
  [ -f "$dir/$1/model.safetensors.index.json" ] || "$py" "$root/bench/make_synthetic.py" "$dir/$1" --layers "$2"
}
gen m1 10
gen m2 22
gen m3 36

# time_cmd LABEL CMD...: runs CMD on a fresh destination, prints "seconds maxrss_kb"
measure() {
  rm -rf "$dir/out"; sync; sleep 0.5
  /usr/bin/time -f "%e %M" -o "$dir/.time" "$@" >/dev/null 2>"$dir/.err" || { cat "$dir/.err" >&2; return 1; }
  cat "$dir/.time"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

model=$dir/m2
size=$(du -sb "$model" | cut -f1)
cat "$model"/* >/dev/null   # warm cache
declare -A T R
for ((i = 0; i < runs; i++)); do   # interleaved, so drift of the machine hits every tool alike
  for tool in cp lbrx-copy lbrx-f16; do
    case $tool in
      cp) out=$(measure cp -r "$model" "$dir/out") ;;
      lbrx-copy) out=$(measure "$lbrx" convert --quiet "$model" "$dir/out") ;;
      lbrx-f16) out=$(measure "$lbrx" convert --quiet --dtype f16 "$model" "$dir/out") ;;
    esac
    T[$tool]+="${out% *} "; R[$tool]+="${out#* } "
  done
done
pyruns=$(( runs < 3 ? runs : 3 ))
for ((i = 0; i < pyruns; i++)); do
  out=$(measure "$py" "$root/bench/py_convert.py" "$model" "$dir/out"); T[py-copy]+="${out% *} "; R[py-copy]+="${out#* } "
  out=$(measure "$py" "$root/bench/py_convert.py" --dtype float16 "$model" "$dir/out"); T[py-f16]+="${out% *} "; R[py-f16]+="${out#* } "
done
med() { echo ${T[$1]} | tr ' ' '\n' | grep . | median; }
rss() { echo ${R[$1]} | tr ' ' '\n' | grep . | sort -n | tail -1; }
cp_t=$(med cp)

echo "### SafeTensors conversion, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(date -u +%Y-%m-%d)"
echo
echo "Model: synthetic Llama-shaped bf16, 3 shards, $(numfmt --to=si "$size")B ($size bytes); warm page cache;"
echo "median of $runs interleaved runs ($pyruns for Python); wall seconds; peak RSS from /usr/bin/time (max over runs)."
echo
echo "| job | tool | wall (s) | vs cp | peak RSS (MB) |"
echo "| --- | --- | ---: | ---: | ---: |"
row() { printf "| %s | %s | %.2f | %.2fx | %.0f |\n" "$1" "$2" "$(med "$3")" "$(echo "$(med "$3") / $cp_t" | bc -l)" "$(echo "$(rss "$3") / 1024" | bc -l)"; }
row copy "cp -r" cp
row copy "lbrx convert" lbrx-copy
row copy "python safetensors (torch) load+save" py-copy
row "bf16->f16" "lbrx convert --dtype f16" lbrx-f16
row "bf16->f16" "python safetensors (torch) load+.to(f16)+save" py-f16
echo

echo "Peak RSS of \`lbrx convert --dtype f16\` by model size (one run each):"
echo
echo "| model | size | wall (s) | peak RSS (MB) |"
echo "| --- | ---: | ---: | ---: |"
for m in m1 m2 m3; do
  cat "$dir/$m"/* >/dev/null
  out=$(measure "$lbrx" convert --quiet --dtype f16 "$dir/$m" "$dir/out")
  printf "| %s | %sB | %s | %.0f |\n" "$m" "$(numfmt --to=si "$(du -sb "$dir/$m" | cut -f1)")" "${out% *}" "$(echo "${out#* } / 1024" | bc -l)"
done
echo

# The largest model inside a 1 GiB memory cgroup (v1 memory controller, else v2).
rm -rf "$dir/out"; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
cg=""
if [ -d /sys/fs/cgroup/memory ]; then
  parent=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
  cg=$parent/lbrx-bench-$$
  mkdir "$cg" && echo $((1 << 30)) > "$cg/memory.limit_in_bytes"
  limit_file=memory.limit_in_bytes; peak_file=memory.max_usage_in_bytes
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  parent=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
  cg=$parent/lbrx-bench-$$
  mkdir "$cg" && echo $((1 << 30)) > "$cg/memory.max"
  limit_file=memory.max; peak_file=memory.peak
fi
if [ -n "$cg" ]; then
  m3size=$(du -sb "$dir/m3" | cut -f1)
  set +e
  /usr/bin/time -f "%e %M" -o "$dir/.time" sh -c "echo \$\$ > '$cg/cgroup.procs' && exec '$lbrx' convert --quiet --dtype f16 '$dir/m3' '$dir/out'"
  rc=$?
  set -e
  ok=$([ $rc -eq 0 ] && "$lbrx" inspect --json "$dir/out" >/dev/null && echo "succeeded" || echo "FAILED (exit $rc)")
  echo "Memory cgroup: \`lbrx convert --dtype f16\` of m3 ($(numfmt --to=si "$m3size")B, $(echo "$m3size / 1073741824" | bc -l | cut -c1-4)x the limit) in a cgroup with $limit_file = 1 GiB: **$ok** in $(cut -d' ' -f1 "$dir/.time") s; cgroup peak $(( $(cat "$cg/$peak_file") >> 20 )) MiB (page cache included), process peak RSS $(( $(cut -d' ' -f2 "$dir/.time") >> 10 )) MiB."
  if [ "${BENCH_PYTHON_IN_CGROUP:-1}" = 1 ]; then
    rm -rf "$dir/out"; sync
    limit_s=${BENCH_PYTHON_CGROUP_TIMEOUT:-180}
    set +e
    start=$(date +%s)
    timeout -s KILL "$limit_s" sh -c "echo \$\$ > '$cg/cgroup.procs' && exec '$py' '$root/bench/py_convert.py' --dtype float16 '$dir/m3' '$dir/out'" >/dev/null 2>&1
    prc=$?
    set -e
    took=$(( $(date +%s) - start ))
    shards_done=$(ls "$dir/out" 2>/dev/null | grep -c safetensors || true)
    if [ $prc -eq 0 ]; then verdict="finished in ${took} s"
    elif [ $took -ge "$limit_s" ]; then verdict="did not finish within ${limit_s} s (thrashing at the limit; $shards_done of 3 shards written), stopped"
    else verdict="failed after ${took} s (exit $prc$([ $prc -eq 137 ] && echo ', OOM-killed'))"; fi
    echo "The Python route (\`py_convert.py --dtype float16\`) in the same cgroup: $verdict."
  fi
  rmdir "$cg" 2>/dev/null || true
else
  echo "Memory cgroup: no writable memory controller here; skipped."
fi
rm -rf "$dir/out"
