#!/usr/bin/env bash
# The training loop on one NVIDIA GPU vs the CPU: offline, no Ray needed, under 10 minutes.
# Needs python3 with the packages of requirements.txt (no network access: the data is
# generated). Prints samples/s of the telemetry MLP on GPU vs CPU, images/s of the visual
# quality control CNN in fp32 and bf16 on the GPU and on the CPU, and checks that each loss
# goes down on the GPU.
#   bash bench/gpu_check.sh [--machines 100 --days 2 --epochs 4 --batch-size 4096]
#                           [--images 2000 --image-batch-size 256]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec timeout 600 "${PYTHON:-python3}" -m bench.gpu_check "$@"
