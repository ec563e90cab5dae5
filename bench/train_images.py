"""Training throughput of the visual quality control CNN, side by side in one run:

1. images/s of Ray Train with 2 workers (DDP, fed by Ray Data, as ``ray_jobs.train.main``
   runs it) vs the same loop in one plain process (``run_local``) using every core of the
   machine: what distributing buys, or costs, on this machine;
2. Ray Data's feed rate (decoded, scaled images per second that ``iterate_batches`` delivers
   from the training dataset, materialized as the driver hands it over and streaming from the
   lake) vs the training step's consumption (augmentation, forward, backward, optimizer step)
   on one core, one worker's share. feed / consume >= 1.5 means the loader keeps the step
   busy with room to spare.

Rounds alternate between the sides, so drift hits both. Prints ratios; not a test.

    python -m bench.train_images [--images 1200] [--days 2] [--epochs 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench._common import ingest, local_ray, training_config
from bench.ray_data_feed_rate import feed_rate, print_feed_ratios, step_rate

USE_CASE = "visual_quality_control"


def run_ray(config: dict, storage: Path) -> dict:
    """Ray Train, 2 CPU workers, the training rows materialized in the object store first."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from ray_jobs.train import CHECKPOINT_FILE, train_loop_per_worker, training_rows

    started = time.perf_counter()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**config, "ray_data": True},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(name=f"bench-{time.time_ns()}", storage_path=str(storage)),
        datasets={"train": training_rows(config).materialize()},
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as directory:
        history = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True)["history"]
    # rank 0's history: its rows and epoch time; both workers train as many rows at once.
    return {"images_per_s": _steady(history, workers=2), "wall_s": time.perf_counter() - started}


def run_single(config: dict) -> dict:
    from ray_jobs.train import run_local

    started = time.perf_counter()
    history = run_local(config)["history"]
    return {"images_per_s": _steady(history, workers=1), "wall_s": time.perf_counter() - started}


def _steady(history: list[dict], workers: int) -> float:
    """Images/s over the epochs after the first (a warm-up)."""
    steady = history[1:] or history
    return workers * sum(h["rows"] for h in steady) / sum(h["epoch_seconds"] for h in steady)


def consume_rate(config: dict, batches: list) -> float:
    from pipelines.catalog import learner_of

    learner = learner_of(USE_CASE)
    model = learner.build_model(len(learner.feature_names), hidden=int(config["hidden"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    loss_fn = learner.loss(config["pos_weight"])
    generator = torch.Generator().manual_seed(0)
    return step_rate(
        model, loss_fn, optimizer, batches, transform=lambda x: learner.augment(x, generator)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1200, help="images per day")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from ray_jobs.train import iterate_batches, training_rows

    work = Path(tempfile.mkdtemp(prefix="bench-train-images-"))
    threads = torch.get_num_threads()
    with local_ray(work):
        days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(args.days)]
        root = str(work / "lake")
        ingest(USE_CASE, days, root, images=args.images)
        config = training_config(root, days, args.epochs, use_case=USE_CASE)
        batch = int(config["batch_size"])

        print("== training: Ray Train, 2 workers vs one process on every core")
        runs = {"single": [], "ray": []}
        for _ in range(args.repeats):
            torch.set_num_threads(threads)
            runs["single"].append(run_single(config))
            runs["ray"].append(run_ray(config, work / "runs"))
        rate = {name: statistics.median(r["images_per_s"] for r in rs) for name, rs in runs.items()}
        wall = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
        print(f"{args.days} days x {args.images} images, {args.epochs} epochs, batch {batch}")
        print(f"single process ({threads} threads) {rate['single']:7.0f} images/s"
              f"  wall {wall['single']:.1f}s")  # fmt: skip
        print(f"ray train (2 workers)    {rate['ray']:7.0f} images/s  wall {wall['ray']:.1f}s")
        print(f"ray / single images/s: {rate['ray'] / rate['single']:.2f}")

        print("== Ray Data feed vs the training step's consumption (one worker's core)")
        dataset = training_rows(config)
        cached = dataset.materialize()
        batches = list(iterate_batches(cached, batch, seed=0, device=torch.device("cpu")))
        torch.set_num_threads(1)
        feeds, streaming, consumes = [], [], []
        for _ in range(args.repeats + 1):
            feeds.append(feed_rate(cached, config, batch))
            streaming.append(feed_rate(dataset, config, batch))
            consumes.append(consume_rate(config, batches))
        print_feed_ratios(consumes, {"materialized": feeds, "streaming": streaming}, "images")


if __name__ == "__main__":
    main()
