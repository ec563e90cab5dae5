"""Ray Data feed rate vs the training step's consumption rate (target: feed / consume >= 1.5).

Feed: rows/s that ``iter_torch_batches`` delivers from the training dataset
(``ray_jobs.train.training_rows``: ``read_parquet`` + the shared feature transform), with
nothing consuming them. Consume: rows/s of the training step itself (forward, backward,
optimizer step, same model and batch size) on batches already in memory. Both are measured in
this process, one consumer each, alternately; if feed/consume >= 1.5 the loader keeps the
step busy with room to spare.

    python -m bench.ray_data_feed_rate [--machines 100] [--days 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from bench._common import local_ray, training_config
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_days
from pipelines.usecases.predictive_maintenance.learner import LEARNER

BATCH = 512


def feed_rate(dataset, config: dict, batch_size: int = BATCH) -> float:
    """Rows/s of the training loop's own iteration (``ray_jobs.train.iterate_batches``, which
    scales the features with the run's scaler, ``config["scaler"]``)."""
    from pipelines.ml.features import Scaler
    from ray_jobs.train import iterate_batches

    scaler = Scaler.from_dict(config["scaler"])
    rows, started = 0, time.perf_counter()
    cpu = torch.device("cpu")
    for _, target in iterate_batches(dataset, batch_size, seed=0, device=cpu, scaler=scaler):
        rows += len(target)
    return rows / (time.perf_counter() - started)


def consume_rate(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model = LEARNER.build_model(len(LEARNER.feature_names), hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(10.0))
    return step_rate(model, loss_fn, optimizer, batches)


def step_rate(model, loss_fn, optimizer, batches, transform=None) -> float:
    """Rows/s of training steps (``transform``, then forward, backward, optimizer step) on
    batches already in memory."""
    rows, started = 0, time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(transform(x) if transform else x).squeeze(-1), y)
        loss.backward()
        optimizer.step()
        rows += len(y)
    return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from ray_jobs.train import training_rows

    work = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    with local_ray(work):
        days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(args.days)]
        root = str(work / "lake")
        ingest_days(days, root, generator=GeneratorConfig(machines=args.machines))
        config = training_config(root, days, epochs=1)
        dataset = training_rows(config)
        batches = [
            (b["features"], b["target"])
            for b in dataset.iter_torch_batches(batch_size=BATCH, dtypes=torch.float32)
        ]
        torch.set_num_threads(1)  # one training worker's share of this machine's cores
        cached = dataset.materialize()  # what ray_jobs.train hands to the trainer
        streaming, feeds, consumes = [], [], []
        for _ in range(args.repeats):
            streaming.append(feed_rate(dataset, config))
            feeds.append(feed_rate(cached, config))
            consumes.append(consume_rate(batches))
        print(f"rows={sum(len(y) for _, y in batches)} batch={BATCH}")
        print_feed_ratios(consumes, {"materialized": feeds, "streaming": streaming}, "rows")


def print_feed_ratios(consumes: list[float], feeds: dict[str, list[float]], unit: str) -> None:
    """The step's consumption and each feed's rate (medians), and feed / consume."""
    consume = statistics.median(consumes)
    print(f"consume (training step)  {consume:11,.0f} {unit}/s")
    for name, rates in feeds.items():
        feed = statistics.median(rates)
        print(f"feed {name:19s} {feed:11,.0f} {unit}/s  ratio {feed / consume:.2f}")
    print("target: feed / consume >= 1.5")


if __name__ == "__main__":
    main()
