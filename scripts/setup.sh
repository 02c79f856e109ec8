#!/usr/bin/env bash
# Make .venv with everything facex_core and its tests need (CPU torch 2.13.0 first, so no
# dependency pulls a CUDA build). Re-running is cheap: nothing is installed again unless
# the requirement files changed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp="$venv/.requirements.sha256"
wanted=$(cat requirements.txt requirements-train.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    echo "$wanted" > "$stamp"
fi
