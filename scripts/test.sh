#!/usr/bin/env bash
# The test suite: set up on first use, then pytest from inside tests/ (its rootdir; the
# repository root is a ComfyUI package pytest must not import). Extra arguments go to
# pytest, paths relative to tests/, e.g. `bash scripts/test.sh test_align.py -x`.
# Tier-2 tests (a real ComfyUI) run when COMFYUI_PATH points at a ComfyUI checkout and
# COMFYUI_PYTHON at its interpreter; otherwise they skip and say why.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root/tests"
exec "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
