#!/usr/bin/env bash
# Creates the Python venv that holds the reference tools the tests compare against.
# Usage: scripts/setup-python.sh [VENV_DIR [REQUIREMENTS]]   (default: $LBRX_VENV or .venv in the repo root,
# scripts/requirements-reference.txt)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-${LBRX_VENV:-$root/.venv}}
req=${2:-$root/scripts/requirements-reference.txt}
stamp="$venv/.lbrx-requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "reference venv up to date: $venv"
  exit 0
fi
python3 -m venv "$venv"
# no wheel cache: torch and its CUDA wheels would be kept twice on disk
export PIP_NO_CACHE_DIR=1
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
echo "$want" > "$stamp"
echo "reference venv ready: $venv"
