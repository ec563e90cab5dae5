"""Distributed training of the failure classifier with Ray Train (TorchTrainer, DDP).

``train_loop_per_worker(config)`` is the per-worker loop, also runnable in one plain process
(``run_local``). ``main()`` is the Ray Jobs entrypoint: it reads the lake partitions, fits the
scaler, runs the trainer with a run name that is stable for the DAG run (so a retry resumes from
the last checkpoint), evaluates on a time-based holdout and writes the model and a typed result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipelines import lake
from pipelines.features import Scaler, feature_matrix, target_vector
from pipelines.model import build_model, save_model_dir
from ray_jobs.contract import run_key, write_result

log = logging.getLogger("conveyor.train")

CHECKPOINT_FILE = "state.pt"


def _in_ray_train() -> bool:
    try:
        import ray.train

        ray.train.get_context().get_world_size()
        return True
    except Exception:  # outside a Ray Train worker get_context() raises
        return False


def _load_rows(files: list[str], until: str | None, rank: int, world: int):
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if until:
        frame = frame[frame["timestamp"] < pd.Timestamp(until)]
    frame = frame.iloc[rank::world]
    return feature_matrix(frame), target_vector(frame)


def train_loop_per_worker(config: dict) -> None:
    """One worker's training loop: its shard of the rows, DDP when run under Ray Train.

    Metrics and a checkpoint are reported every epoch; nothing is returned (Ray Train forbids
    returning tensors from workers).
    """
    _train(config)


def run_local(config: dict) -> dict:
    """The same loop in this process without Ray (tests, a single GPU): weights and history."""
    model, history = _train(config)
    return {"state_dict": model.state_dict(), "history": history}


def _train(config: dict):
    torch.manual_seed(int(config.get("seed", 0)))
    distributed = _in_ray_train()
    rank, world = 0, 1
    device = torch.device("cpu")
    if distributed:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        rank, world = context.get_world_rank(), context.get_world_size()
        device = ray.train.torch.get_device()

    scaler = Scaler.from_dict(config["scaler"])
    features, target = _load_rows(config["files"], config.get("train_until"), rank, world)
    features = scaler.transform(features)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(features), torch.from_numpy(target))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=int(config["batch_size"]),
        shuffle=True,
        generator=torch.Generator().manual_seed(int(config.get("seed", 0)) + rank),
        pin_memory=device.type == "cuda",
    )

    model = build_model(hidden=int(config["hidden"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    start_epoch = 0
    if distributed:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as directory:
                state = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start_epoch = int(state["epoch"]) + 1
            log.info("resuming from checkpoint epoch=%d", start_epoch)
        model = ray.train.torch.prepare_model(model)
    else:
        model = model.to(device)

    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(config["pos_weight"])))
    loss_fn = loss_fn.to(device)
    history = []
    for epoch in range(start_epoch, int(config["epochs"])):
        model.train()
        total, count = 0.0, 0
        for batch_x, batch_y in loader:
            batch_x, batch_y = batch_x.to(device), batch_y.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(batch_x).squeeze(-1)
            loss = loss_fn(logits.float(), batch_y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch_y)
            count += len(batch_y)
        metrics = {"epoch": epoch, "train_loss": total / max(count, 1)}
        history.append(metrics)
        if distributed:
            _report_epoch(model, optimizer, epoch, metrics, rank)
    return (model.module if hasattr(model, "module") else model), history


def _report_epoch(model, optimizer, epoch: int, metrics: dict, rank: int) -> None:
    """Report metrics every epoch; rank 0 attaches a checkpoint to resume from."""
    import ray.train

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            state = {
                "model": model.module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
            }
            torch.save(state, Path(directory) / CHECKPOINT_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)


def time_cutoffs(timestamps: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Split points: train on the first 70 % of time, pick the threshold on the next 10 %,
    report on the latest 20 % (a time-based holdout, never a random one)."""
    start, end = timestamps.min(), timestamps.max()
    span = end - start
    return start + 0.7 * span, start + 0.8 * span


def evaluate(probabilities: np.ndarray, target: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

    predicted = (probabilities >= threshold).astype(int)
    has_both = 0 < target.sum() < len(target)
    return {
        "pr_auc": float(average_precision_score(target, probabilities)) if has_both else 0.0,
        "f1": float(f1_score(target, predicted, zero_division=0)),
        "precision": float(precision_score(target, predicted, zero_division=0)),
        "recall": float(recall_score(target, predicted, zero_division=0)),
        "threshold": float(threshold),
        "rows": int(len(target)),
        "positives": int(target.sum()),
    }


def choose_threshold(probabilities: np.ndarray, target: np.ndarray) -> float:
    candidates = np.linspace(0.05, 0.95, 19)
    scores = [evaluate(probabilities, target, t)["f1"] for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def _score(state_dict: dict, hidden: int, scaler: Scaler, frame: pd.DataFrame) -> np.ndarray:
    model = build_model(hidden=hidden)
    model.load_state_dict(state_dict)
    model.eval()
    with torch.inference_mode():
        logits = model(torch.from_numpy(scaler.transform(feature_matrix(frame)))).squeeze(-1)
    return torch.sigmoid(logits).numpy()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root")
    parser.add_argument("--dates", required=True, help="comma-separated YYYY-MM-DD partitions")
    parser.add_argument("--storage-path", required=True, help="shared storage for runs")
    parser.add_argument("--name", default=None, help="run name (default: CONVEYOR_RUN_KEY)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--use-gpu", choices=["auto", "true", "false"], default="auto")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-failures", type=int, default=2)
    return parser.parse_args(argv)


def _use_gpu(choice: str) -> bool:
    if choice != "auto":
        return choice == "true"
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    days = [dt.date.fromisoformat(d) for d in args.dates.split(",") if d]
    if not days:
        raise SystemExit("train: --dates names no partition")
    files = lake.partition_files(args.lake, days)
    manifests = {d.isoformat(): lake.read_manifest(args.lake, d).sha256 for d in days}
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    train_until, holdout_from = time_cutoffs(frame["timestamp"])
    train_rows = frame[frame["timestamp"] < train_until]
    scaler = Scaler.fit(feature_matrix(train_rows))
    positives = float(train_rows["machine_failure"].sum())
    pos_weight = min((len(train_rows) - positives) / max(positives, 1.0), 20.0)

    ray.init(ignore_reinit_error=True)
    use_gpu = _use_gpu(args.use_gpu)
    name = args.name or run_key(default=f"train-{'-'.join(d.isoformat() for d in days)}")
    log.info(
        "training name=%s rows=%d workers=%d gpu=%s",
        name,
        len(train_rows),
        args.num_workers,
        use_gpu,
    )
    config = {
        "files": files,
        "train_until": train_until.isoformat(),
        "scaler": scaler.as_dict(),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "hidden": args.hidden,
        "seed": args.seed,
        "pos_weight": pos_weight,
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=args.num_workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=name,
            storage_path=str(Path(args.storage_path).resolve()),
            failure_config=FailureConfig(max_failures=args.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True)

    validation = frame[(frame["timestamp"] >= train_until) & (frame["timestamp"] < holdout_from)]
    holdout = frame[frame["timestamp"] >= holdout_from]
    threshold = choose_threshold(
        _score(state["model"], args.hidden, scaler, validation), target_vector(validation)
    )
    # Random failures (RNF alone) are unpredictable by construction: report without them too.
    predictable = holdout[
        ~((holdout["rnf"] == 1) & (holdout[["twf", "hdf", "pwf", "osf"]].sum(axis=1) == 0))
    ]
    metrics = evaluate(
        _score(state["model"], args.hidden, scaler, predictable),
        target_vector(predictable),
        threshold,
    )
    metrics["final_train_loss"] = float(result.metrics.get("train_loss", float("nan")))
    params = {k: v for k, v in vars(args).items() if k not in ("lake", "storage_path")}
    params.update(use_gpu=use_gpu, pos_weight=pos_weight)
    model_dir = Path(args.storage_path).resolve() / name / "model"
    save_model_dir(
        model_dir,
        state["model"],
        scaler,
        {
            "hidden": args.hidden,
            "threshold": threshold,
            "metrics": metrics,
            "train_dates": [d.isoformat() for d in days],
            "manifests": manifests,
        },
    )
    out = {
        "status": "succeeded",
        "run_name": name,
        "model_dir": str(model_dir),
        "checkpoint": result.checkpoint.path,
        "metrics": metrics,
        "params": params,
        "train_dates": [d.isoformat() for d in days],
        "manifests": manifests,
    }
    write_result(out)
    log.info("training done metrics=%s", json.dumps(metrics))
    return out


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
