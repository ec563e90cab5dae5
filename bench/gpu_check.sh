#!/usr/bin/env bash
# The training loop on one NVIDIA GPU vs the CPU: offline, no Ray needed, under 10 minutes.
# Needs python3 with torch, numpy, pandas, pyarrow, fsspec and scikit-learn (no network access:
# the data is generated). Prints samples/s on GPU vs CPU and checks that the loss goes down.
#   bash bench/gpu_check.sh [--machines 100 --days 2 --epochs 4 --batch-size 4096]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec timeout 600 "${PYTHON:-python3}" -m bench.gpu_check "$@"
