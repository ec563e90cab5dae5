"""GPU check: the training loop on one NVIDIA GPU vs the CPU, offline, without Ray.

Two models, each on data from its use case's built-in generator (no download), through
``run_local`` (the same loop Ray Train runs per worker):

- predictive maintenance's MLP on telemetry: samples/s on ``cuda`` (bf16 autocast) vs the CPU;
- visual quality control's CNN on product images: images/s on ``cuda`` in fp32 and in bf16,
  and on the CPU (fp32).

It checks that the loss goes down on the GPU for each. Exit codes: 0 on success, 1 if a loss
did not go down, 2 if no CUDA GPU is visible (CPU numbers still print).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time

import torch

from bench._common import ingest, training_config
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_days
from ray_jobs.train import run_local

IMAGES = "visual_quality_control"


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
        "precision": config.get("precision", "bf16") if config["device"] == "cuda" else "fp32",
        "samples_per_s": rows / seconds,
        "epochs": len(history),
        "loss": [round(h["train_loss"], 4) for h in history],
        "wall_s": round(time.perf_counter() - started, 2),
    }


def cnn(images: int, days: int, epochs: int, batch_size: int) -> bool:
    """The CNN on ``days`` x ``images`` generated product images: CPU fp32, then GPU fp32 and
    bf16 when a GPU is visible. True when the GPU ran and its loss went down in both."""
    with tempfile.TemporaryDirectory() as root:
        dates = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(days)]
        ingest(IMAGES, dates, root, images=images)

        def config(device: str, precision: str, n_epochs: int) -> dict:
            return training_config(
                root,
                dates,
                n_epochs,
                use_case=IMAGES,
                batch_size=batch_size,
                device=device,
                precision=precision,
            )

        cpu = _run(config("cpu", "fp32", 1))
        print(json.dumps(cpu))
        if not torch.cuda.is_available():
            return False
        _run(config("cuda", "bf16", 1))  # warm-up
        gpu = {p: _run(config("cuda", p, epochs)) for p in ("fp32", "bf16")}
        for run in gpu.values():
            print(json.dumps(run))
    fp32, bf16 = gpu["fp32"]["samples_per_s"], gpu["bf16"]["samples_per_s"]
    print(
        f"CNN images/s: GPU bf16 {bf16:.0f}, GPU fp32 {fp32:.0f}, CPU {cpu['samples_per_s']:.0f};"
        f" bf16 / fp32 {bf16 / fp32:.2f}x, GPU bf16 / CPU {bf16 / cpu['samples_per_s']:.1f}x"
    )
    return all(run["loss"][-1] < run["loss"][0] for run in gpu.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--images", type=int, default=2000, help="CNN: images per day")
    parser.add_argument("--image-batch-size", type=int, default=256)
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
            cnn(args.images, args.days, args.epochs, args.image_batch_size)  # its CPU figure
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
    if not cnn(args.images, args.days, args.epochs, args.image_batch_size):
        print("gpu_check: the CNN's loss did not go down on the GPU", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
