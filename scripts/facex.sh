#!/usr/bin/env bash
# The main job outside ComfyUI: set up on first use, then `python -m facex_core ARGS`.
# Example: bash scripts/facex.sh extract --image portrait.jpg --out portrait.safetensors
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/python" -m facex_core "$@"
