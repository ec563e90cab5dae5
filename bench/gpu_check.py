"""GPU check: the training loop on one NVIDIA GPU vs the CPU, offline, without Ray.

Generates telemetry with the built-in generator (no download), runs ``run_local`` (the same
loop Ray Train runs per worker) on ``cuda`` with bf16 autocast and on the CPU, prints samples/s
for each and their ratio, and checks that the loss goes down on the GPU. Exit codes: 0 on
success, 1 if the loss did not go down, 2 if no CUDA GPU is visible (CPU numbers still print).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time

import torch

from bench._common import training_config
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_days
from ray_jobs.train import run_local


def _config(root: str, days: list, device: str, epochs: int, batch_size: int) -> dict:
    return training_config(root, days, epochs, batch_size=batch_size, hidden=256, device=device)


def _run(config: dict) -> dict:
    started = time.perf_counter()
    history = run_local(config)["history"]
    if config["device"] == "cuda":
        torch.cuda.synchronize()
    seconds = sum(h["epoch_seconds"] for h in history)
    rows = sum(h["rows"] for h in history)
    return {
        "device": config["device"],
        "samples_per_s": rows / seconds,
        "epochs": len(history),
        "loss": [round(h["train_loss"], 4) for h in history],
        "wall_s": round(time.perf_counter() - started, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4096)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(args.days)]
        ingest_days(days, root, generator=GeneratorConfig(machines=args.machines))
        cpu = _run(_config(root, days, "cpu", 1, args.batch_size))
        print(json.dumps(cpu))
        if not torch.cuda.is_available():
            print(
                "gpu_check: no CUDA GPU visible to torch; only the CPU numbers above",
                file=sys.stderr,
            )
            return 2
        print(f"gpu: {torch.cuda.get_device_name(0)} torch {torch.__version__}")
        _run(_config(root, days[:1], "cuda", 1, args.batch_size))  # warm-up: CUDA context, kernels
        gpu = _run(_config(root, days, "cuda", args.epochs, args.batch_size))
        print(json.dumps(gpu))
    ratio = gpu["samples_per_s"] / cpu["samples_per_s"]
    print(
        f"samples/s GPU {gpu['samples_per_s']:.0f} vs CPU {cpu['samples_per_s']:.0f}:"
        f" {ratio:.1f}x; loss {gpu['loss'][0]} -> {gpu['loss'][-1]}"
    )
    if not gpu["loss"][-1] < gpu["loss"][0]:
        print("gpu_check: the loss did not go down on the GPU", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
