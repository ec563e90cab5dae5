"""Ray Train vs torchrun: the same 2-worker DDP loop on the same data (target: epoch-time ratio
<= 1.05), plus each side's start-up time, reported separately.

Both run ``ray_jobs.train``'s loop with the DataLoader input path (so only the launcher differs):
Ray Train's ``TorchTrainer`` on a local Ray head started here on free ports, and
``torchrun --nproc_per_node=2``. They alternate, and the medians of the steady epochs (the first
is a warm-up) are compared. A Ray Data variant (``read_parquet`` -> ``iter_torch_batches``) is
reported beside them.

    python -m bench.train_ray_vs_torchrun [--machines 40] [--days 2] [--epochs 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import local_ray, training_config
from conveyor.processes import free_port
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_days


def run_ray(config: dict, storage: Path, ray_data: bool) -> dict:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from ray_jobs.train import CHECKPOINT_FILE, train_loop_per_worker, training_rows

    started = time.perf_counter()
    datasets = {}
    if ray_data:
        datasets = {"train": training_rows(config)}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**config, "ray_data": ray_data},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(name=f"bench-{time.time_ns()}", storage_path=str(storage)),
        datasets=datasets,
    )
    result = trainer.fit()
    import torch

    with result.checkpoint.as_directory() as directory:
        history = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True)["history"]
    return {"history": history, "wall_s": time.perf_counter() - started}


def run_torchrun(config: dict, work: Path) -> dict:
    config_path, out = work / "config.json", work / f"out-{time.time_ns()}.json"
    config_path.write_text(json.dumps(config))
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    argv = [
        torchrun,
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "bench/torchrun_loop.py",
    ]
    started = time.perf_counter()
    subprocess.run([*argv, str(config_path), str(out)], env=env, check=True, capture_output=True)
    return {**json.loads(out.read_text()), "wall_s": time.perf_counter() - started}


def steady_epoch(run: dict) -> float:
    return statistics.median(h["epoch_seconds"] for h in run["history"][1:])


def startup(run: dict) -> float:
    return run["wall_s"] - sum(h["epoch_seconds"] for h in run["history"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=40)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    with local_ray(work):
        days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(args.days)]
        ingest_days(days, str(work / "lake"), generator=GeneratorConfig(machines=args.machines))
        config = training_config(str(work / "lake"), days, args.epochs)
        runs = {"torchrun": [], "ray": [], "ray+data": []}
        for _ in range(args.repeats):
            runs["torchrun"].append(run_torchrun(config, work))
            runs["ray"].append(run_ray(config, work / "runs", ray_data=False))
            runs["ray+data"].append(run_ray(config, work / "runs", ray_data=True))
        rows = runs["torchrun"][0]["history"][0]["rows"]
        print(f"rows per worker per epoch={rows} epochs={args.epochs} repeats={args.repeats}")
        base = statistics.median(steady_epoch(r) for r in runs["torchrun"])
        for name, results in runs.items():
            epoch = statistics.median(steady_epoch(r) for r in results)
            start = statistics.median(startup(r) for r in results)
            print(
                f"{name:9s} epoch {epoch:.3f}s  ratio vs torchrun {epoch / base:.2f}"
                f"  start-up {start:.1f}s"
            )
        print("target: ray / torchrun epoch ratio <= 1.05")


if __name__ == "__main__":
    main()
