#!/usr/bin/env bash
# One GPU check of every benchmark at full size, their tables in one file (see
# benchmarks/gpu_check.py, which this runs; PYTHON picks the interpreter):
#
#   benchmarks/gpu_check.sh [--dry-run] [--out FILE] [--faces DIR]
#
# --dry-run: CPU, tiny networks and sizes, for CI (tests/test_gpu_check.py). Without it the
# check stops at once when no CUDA GPU is available. Exit status 1 when any benchmark failed.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m benchmarks.gpu_check "$@"
