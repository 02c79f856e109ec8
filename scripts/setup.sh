#!/usr/bin/env bash
# Make .venv with everything facex_core and its tests need, at the exact versions of
# constraints.txt (CPU torch 2.13.0 first, so no dependency pulls a CUDA build). Re-running is
# cheap: nothing is installed again unless the requirement or constraint files changed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp="$venv/.requirements.sha256"
wanted=$(cat requirements.txt requirements-train.txt requirements-dev.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    pip_install=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt)
    "${pip_install[@]}" torch
    "${pip_install[@]}" -r requirements-dev.txt
    echo "$wanted" > "$stamp"
fi
