#!/usr/bin/env bash
# Builds llama.cpp's tools (llama-gguf-split, llama-quantize, ...) from the source inside the llama-cpp-python
# 0.3.36 sdist on PyPI, into a cache outside the checkout. Prints the bin directory.
# Usage: scripts/build-llama-tools.sh [TARGET ...]   (env: LBRX_LLAMA_DIR, LBRX_VENV)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${LBRX_LLAMA_DIR:-$HOME/.cache/lbrx/llama-src}
venv=${LBRX_VENV:-$root/.venv}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(llama-gguf-split llama-quantize)
mkdir -p "$dir"
src=$dir/llama_cpp_python-0.3.36/vendor/llama.cpp
if [ ! -f "$src/CMakeLists.txt" ]; then
  "$venv/bin/pip" install -q cmake scikit-build-core >&2
  PATH=$venv/bin:$PATH "$venv/bin/pip" download -q --no-deps --no-binary llama-cpp-python --no-build-isolation \
    llama-cpp-python==0.3.36 -d "$dir" >&2
  tar xzf "$dir/llama_cpp_python-0.3.36.tar.gz" -C "$dir"
fi
cmake=$(command -v cmake || echo "$venv/bin/cmake")
[ -x "$cmake" ] || { "$venv/bin/pip" install -q cmake >&2; cmake=$venv/bin/cmake; }
build=$dir/build
need=0
for t in "${targets[@]}"; do [ -x "$build/bin/$t" ] || need=1; done
if [ $need = 1 ]; then
  "$cmake" -S "$src" -B "$build" -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release >&2
  "$cmake" --build "$build" -j "$(nproc)" --target "${targets[@]}" >&2
fi
echo "$build/bin"
