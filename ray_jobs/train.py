"""Distributed training of a use case's model with Ray Train (TorchTrainer, DDP): one driver
for every use case, which supplies its features, target, network and holdout rules through its
learner (``pipelines.ml.learner``).

``train_loop_per_worker(config)`` is the per-worker loop, also runnable in one plain process
(``run_local``). ``main()`` is the Ray Jobs entrypoint: it splits the use case's lake
partitions by time, fits the scaler in a Ray task while the trainer starts its workers, streams
the rows to the workers with Ray Data, runs the trainer with a run name that is stable for the
DAG run (so a retry resumes from the last checkpoint), evaluates on a time-based holdout and
writes the model and a typed result. The driver never holds the lake.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import importlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipelines.catalog import get_use_case, learner_of
from pipelines.data import lake
from pipelines.lineage import Lineage, lake_partitions, location
from pipelines.ml import streaming
from pipelines.ml.evaluation import holdout_report, reference_scores
from pipelines.ml.features import Scaler
from pipelines.ml.model import save_model_dir
from pipelines.ml.registry import REFERENCE_SCORES
from pipelines.ml.result import TrainingResult
from ray_jobs.contract import run_key, write_result

log = logging.getLogger("conveyor.train")

CHECKPOINT_FILE = "state.pt"


def return_freed_memory() -> None:
    """Make glibc hand large freed buffers back to the OS at once.

    Each batch allocates and frees buffers of a few megabytes. glibc raises its mmap threshold
    after the first such buffer is freed, so the later ones come from the heap and stay
    there: the process's memory then grows with the number of batches, not their size. A
    fixed threshold (which also stops that adjustment) keeps the driver and the workers at
    what one batch needs. No effect where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 20)
        libc.mallopt(m_trim_threshold, 1 << 20)
    except (OSError, AttributeError):
        pass


def _in_ray_train() -> bool:
    try:
        import ray.train

        ray.train.get_context().get_world_size()
        return True
    except Exception:  # outside a Ray Train worker get_context() raises
        return False


def _use_case(config: dict):
    """The learner and time column of the run's use case (``config["use_case"]``)."""
    use_case = get_use_case(config["use_case"])
    return learner_of(use_case), use_case.table.time_column


def _load_rows(config: dict, rank: int, world: int):
    learner, time_column = _use_case(config)
    frame = pd.concat([pd.read_parquet(f) for f in config["files"]], ignore_index=True)
    if config.get("train_until"):
        frame = frame[frame[time_column] < pd.Timestamp(config["train_until"])]
    frame = frame.iloc[rank::world]
    return learner.features(frame), learner.targets(frame)


def training_rows(config: dict):
    """The training rows as a Ray Dataset of features and targets: read from the lake with
    ``read_parquet`` and transformed by the same code that serves (the use case's learner),
    so loading streams and scales with the cluster instead of the driver's memory.

    The features are not scaled here: each worker scales what it iterates with the run's
    scaler (``with_statistics``), so the rows can be read while the statistics task is still
    computing that scaler. The transform (``streaming.training_tensors``, given the learner
    itself) imports neither torch nor the use-case catalog in the read workers."""
    import ray.data

    learner, time_column = _use_case(config)
    transform = functools.partial(
        streaming.training_tensors,
        learner=learner,
        time_column=time_column,
        until=pd.Timestamp(config["train_until"]),
    )
    columns = streaming.lake_columns(learner, time_column, evaluating=False)
    files = config["files"]
    with footer_readers_for(len(files)):
        rows = ray.data.read_parquet(files, columns=columns, partitioning=None)
    rows = rows.map_batches(transform, batch_format="pyarrow", batch_size=streaming.BATCH_ROWS)
    # Small blocks, not one per partition file: a worker converts each block it iterates and
    # keeps what that took, so the blocks' size, not a day's rows, sets its memory.
    rows.context.target_max_block_size = TRAINING_BLOCK_BYTES
    return rows


TRAINING_BLOCK_BYTES = 8 * 1024**2
"""Largest block of training rows Ray Data makes (its default, 128 MiB, holds a whole day
of a large fleet's rows)."""


FOOTER_READERS_VARIABLE = "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"
FILES_PER_FOOTER_READER = 10
"""Files whose footers one reader actor takes per call (Ray Data's footer batch)."""
MAX_FOOTER_READERS = 32


@contextlib.contextmanager
def footer_readers_for(files: int):
    """Ray Data lists a Parquet read by reading the files' footers on a pool of actors,
    32 by default whatever the number of files: 32 worker processes started and killed for
    each read, which on a small cluster costs more than reading a week of partitions. The
    pool is sized to the files here (one actor per footer batch, at most 32), unless the
    environment already sets it. Ray reads the setting when the read is planned, in this
    process, so it is set only around that call."""
    if os.environ.get(FOOTER_READERS_VARIABLE):
        yield
        return
    readers = min(MAX_FOOTER_READERS, max(1, -(-files // FILES_PER_FOOTER_READER)))
    os.environ[FOOTER_READERS_VARIABLE] = str(readers)
    try:
        yield
    finally:
        os.environ.pop(FOOTER_READERS_VARIABLE, None)


def _local_batches(config: dict, rank: int, world: int, device):
    """Batches without Ray: this worker's rows through a shuffling DataLoader."""
    scaler = Scaler.from_dict(config["scaler"])
    features, target = _load_rows(config, rank, world)
    dataset = torch.utils.data.TensorDataset(
        torch.from_numpy(scaler.transform(features)), torch.from_numpy(target)
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=int(config["batch_size"]),
        shuffle=True,
        generator=torch.Generator().manual_seed(int(config.get("seed", 0)) + rank),
        pin_memory=device.type == "cuda",
    )

    def epoch_batches(epoch: int):
        yield from loader

    return epoch_batches


SHUFFLE_WINDOW = 8
"""Batches per shuffle window: rows are permuted within windows of this many batches."""


def iterate_batches(data, batch_size: int, seed: int, device, scaler: Scaler | None = None):
    """(features, target) tensors from a Ray Dataset or shard, shuffled within windows, the
    features scaled by ``scaler`` when given (``training_rows`` leaves them unscaled).

    NumPy batches turned into tensors here, and a permutation per window, deliver rows faster
    than ``iter_torch_batches`` with its local shuffle buffer, which shuffles row by row in
    Python (bench.ray_data_feed_rate measures the feed).
    """
    rng = np.random.default_rng(seed)
    pin = device.type == "cuda"
    for window in data.iter_batches(
        batch_size=SHUFFLE_WINDOW * batch_size, batch_format="numpy", prefetch_batches=2
    ):
        order = rng.permutation(len(window["target"]))  # the one copy: Arrow's are read-only
        features = window["features"][order].astype(np.float32, copy=False)
        if scaler is not None:
            scaler.transform(features, out=features)
        features = torch.from_numpy(features)
        target = torch.from_numpy(window["target"][order].astype(np.float32, copy=False))
        if pin:
            features, target = features.pin_memory(), target.pin_memory()
        for start in range(0, len(target), batch_size):
            yield features[start : start + batch_size], target[start : start + batch_size]


WORKER_CACHE_MB = 64
"""Default of ``--worker-cache-mb``: the largest shard a worker keeps in its own memory."""


def _ray_data_batches(config: dict, rank: int, device):
    """Batches from this worker's shard of the ``train`` dataset (Ray Data).

    A shard up to ``worker_cache_bytes`` is read once and kept in the worker's memory when a
    later epoch will use it: each later epoch only reshuffles it (iterating a Ray Data split
    has a fixed cost per epoch, a streaming split's start-up, which would dominate small
    epochs). A larger shard, a run's last epoch, or a run that streams its data
    (``--streaming-data``) is read every epoch, shuffled within windows, so the worker holds
    a few windows whatever the data's size.
    """
    import ray.train

    shard = ray.train.get_dataset_shard("train")
    scaler = Scaler.from_dict(config["scaler"])
    seed = int(config.get("seed", 0)) * 1000 + rank
    batch_size = int(config["batch_size"])
    budget = int(config.get("worker_cache_bytes", WORKER_CACHE_MB * 1024**2))
    cache: list[torch.Tensor] = []
    stream_each_epoch = [bool(config.get("streaming_data"))]

    last_epoch = int(config["epochs"]) - 1

    def epoch_batches(epoch: int):
        if stream_each_epoch[0] or (epoch == last_epoch and not cache):  # no later epoch
            yield from iterate_batches(shard, batch_size, seed + 10 * epoch, device, scaler)
            return
        if not cache:
            windows = iterate_batches(shard, batch_size, seed, torch.device("cpu"), scaler)
            parts, size = [], 0
            for x, y in windows:
                parts.append((x, y))
                size += x.nbytes + y.nbytes
                if size > budget:  # too large to keep: this epoch and the next stream
                    stream_each_epoch[0] = True
                    parts.reverse()
                    while parts:  # each window let go of once it is trained on
                        yield parts.pop()
                    yield from windows
                    return
            cache.extend([torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])])
            del parts
        features, target = cache
        generator = torch.Generator().manual_seed(seed + 10 * epoch)
        order = torch.randperm(len(target), generator=generator)
        for start in range(0, len(target), batch_size):
            rows = order[start : start + batch_size]
            yield features[rows], target[rows]

    return epoch_batches


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
    return_freed_memory()
    config = with_statistics(config)
    torch.manual_seed(int(config.get("seed", 0)))
    distributed = _in_ray_train()
    rank, world = 0, 1
    device = torch.device(config.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    if distributed:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        rank, world = context.get_world_rank(), context.get_world_size()
        device = ray.train.torch.get_device()
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        # Launched by torchrun (bench/train_ray_vs_torchrun.py): same loop, plain DDP.
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()

    if distributed and config.get("ray_data"):
        epoch_batches = _ray_data_batches(config, rank, device)
    else:
        epoch_batches = _local_batches(config, rank, world, device)

    learner, _ = _use_case(config)
    model = learner.build_model(len(learner.feature_names), hidden=int(config["hidden"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    start_epoch, history = 0, []
    if distributed:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as directory:
                state = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start_epoch = int(state["epoch"]) + 1
            history = list(state.get("history", []))
            log.info("resuming from checkpoint epoch=%d", start_epoch)
        model = ray.train.torch.prepare_model(model)
    elif world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model.to(device))
    else:
        model = model.to(device)

    loss_fn = learner.loss(config["pos_weight"]).to(device)
    augmenting = torch.Generator(device="cpu").manual_seed(int(config.get("seed", 0)) * 7919 + rank)
    # bf16 autocast on a GPU unless the run asks for fp32 (bench/gpu_check.py compares both).
    bf16 = device.type == "cuda" and config.get("precision", "bf16") == "bf16"
    private, workers = PrivatePeak(), world if distributed else 1
    for epoch in range(start_epoch, int(config["epochs"])):
        model.train()
        total, count, started = 0.0, 0, time.perf_counter()
        for batch_x, batch_y in epoch_batches(epoch):
            batch_x = learner.augment(batch_x.to(device, non_blocking=True), augmenting)
            batch_y = batch_y.to(device, non_blocking=True)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(batch_x).squeeze(-1)
            loss = loss_fn(logits.float(), batch_y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch_y)
            count += len(batch_y)
        metrics = {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "epoch_seconds": time.perf_counter() - started,
            "rows": count,
            "worker_peak_rss_bytes": _largest(peak_rss_bytes(), workers, device),
            "worker_peak_private_bytes": _largest(private.read(), workers, device),
            # Which checkpoint this attempt started from (0: from scratch), kept in the
            # history so a resumed run shows in its result, not only in a worker's log.
            "resumed_from_epoch": start_epoch,
        }
        history.append(metrics)
        if distributed:
            _report_epoch(model, optimizer, epoch, metrics, rank, history)
    private.stop()
    return _unwrap(model), history


def _status_bytes(field: str) -> int | None:
    """A memory figure of ``/proc/self/status`` (``VmHWM``, ``RssAnon``) in bytes; None
    where there is no such file (not Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far: ``VmHWM`` of its own address space.

    Not ``ru_maxrss``: Linux carries the parent's resident size over a fork and exec into
    it, so a driver started by a large process would report that process's memory.
    """
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def private_rss_bytes() -> int:
    """This process's private resident memory now (``RssAnon``): its heap, tensors and
    copies, without the shared pages of the Ray object store it maps; 0 where unknown."""
    return _status_bytes("RssAnon") or 0


class PrivatePeak:
    """The peak of ``private_rss_bytes``, sampled every ``interval`` seconds by a daemon
    thread. A worker's ``VmHWM`` also counts the object store's pages it mapped while it read
    its blocks: those are the store's memory (bounded by its size, spilled beyond it), shared
    with every process on the node, and stay counted after the worker is done with them."""

    def __init__(self, interval: float = 0.2):
        self.peak = private_rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, private_rss_bytes())

    def read(self) -> int:
        self.peak = max(self.peak, private_rss_bytes())
        return self.peak

    def stop(self) -> None:
        self._stop.set()


def _largest(value: int, world: int, device) -> int:
    """The largest ``value`` among the training workers (every rank takes part)."""
    peak = value
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        value = torch.tensor([peak], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        peak = int(value.item())
    return peak


def _unwrap(model):
    """The bare network: DDP wraps it in ``.module``, a single worker's model is not wrapped."""
    return model.module if hasattr(model, "module") else model


def _report_epoch(model, optimizer, epoch: int, metrics: dict, rank: int, history: list) -> None:
    """Report metrics every epoch; rank 0 attaches a checkpoint to resume from (with the
    history so far, so a resumed run still reports every epoch)."""
    import ray.train

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            state = {
                "model": _unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "history": history,
            }
            torch.save(state, Path(directory) / CHECKPOINT_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)


def scorer(learner, state_dict: dict, hidden: int, scaler: Scaler, device: str = "cpu"):
    """The trained network as a function of rows (a frame) to the learner's scores."""
    model = learner.build_model(len(learner.feature_names), hidden=hidden)
    model.load_state_dict(state_dict)
    model.eval().to(device)

    def score(frame) -> np.ndarray:
        features = torch.from_numpy(scaler.transform(learner.features(frame))).to(device)
        with torch.inference_mode():
            return learner.scores(model(features).squeeze(-1)).cpu().numpy()

    return score


SCORE_COLUMN, SPLIT_COLUMN = "_score", "_split"


def score_shape(learner, state_dict: dict, hidden: int) -> tuple[int, np.dtype]:
    """Scores per row (0: one number, k: k columns) and their dtype, as the trained network
    gives them: the actors keep that dtype so the driver's metrics are the same numbers."""
    model = learner.build_model(len(learner.feature_names), hidden=hidden)
    model.load_state_dict(state_dict)
    model.eval()
    with torch.inference_mode():
        out = learner.scores(model(torch.zeros(1, len(learner.feature_names))).squeeze(-1))
    return (0 if out.dim() == 1 else int(out.shape[-1])), out.numpy().dtype


def score_columns(width: int) -> list[str]:
    return [SCORE_COLUMN] if width == 0 else [f"{SCORE_COLUMN}_{i}" for i in range(width)]


class SplitScorer:
    """A Ray Data actor's work on one batch of lake rows: the validation and holdout rows,
    scored by the trained network, with what evaluation keeps of them
    (``streaming.kept_columns``), their split's name and their scores as columns. A batch
    with none gives an empty frame of the same columns."""

    def __init__(self, use_case: str, state_dict: dict, hidden: int, scaler: dict, split):
        learner = learner_of(get_use_case(use_case))
        self.learner, self.split = learner, split
        device = "cuda" if torch.cuda.is_available() else "cpu"  # a GPU actor's own GPU
        self.score = scorer(
            learner, state_dict, hidden, Scaler.from_dict(scaler, learner.feature_names), device
        )
        width, self.dtype = score_shape(learner, state_dict, hidden)
        self.scores = score_columns(width)

    def __call__(self, batch) -> pd.DataFrame:
        if not isinstance(batch, pd.DataFrame):  # Arrow, made pandas as the driver does
            batch = batch.to_pandas()
        parts = []
        for name, rows in streaming.evaluated_rows(batch, self.split):
            kept = streaming.kept_columns(rows, self.learner).reset_index(drop=True)
            scores = np.asarray(self.score(rows)).reshape(len(rows), -1)
            kept[SPLIT_COLUMN] = name
            for i, column in enumerate(self.scores):  # one typed column each, not one object
                kept[column] = scores[:, i]
            parts.append(kept)
        if parts:
            return pd.concat(parts, ignore_index=True)
        empty = streaming.kept_columns(batch.iloc[:0], self.learner).reset_index(drop=True)
        empty[SPLIT_COLUMN] = pd.Series(dtype=object)
        for column in self.scores:
            empty[column] = np.empty(0, dtype=self.dtype)
        return empty


def evaluate_on_cluster(
    files: list[str],
    split,
    use_case: str,
    state_dict: dict,
    hidden: int,
    scaler: Scaler,
    *,
    actors: int,
    use_gpu: bool = False,
    seed: int = 0,
) -> tuple[streaming.ScoredRows, streaming.ScoredRows]:
    """``streaming.evaluate_splits`` with the reading and scoring done by Ray Data on the
    cluster (``actors`` scoring actors, a GPU each with ``use_gpu``); the driver only collects
    the scored rows, in the lake's order, so the result equals the driver's own."""
    import ray.data

    learner = learner_of(get_use_case(use_case))
    width, _ = score_shape(learner, state_dict, hidden)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the samples depend on the row order
    with footer_readers_for(len(files)):
        # The columns, and their types, as the driver reads them (no hive partition column).
        columns = streaming.lake_columns(learner, split.time_column, evaluating=True)
        rows = ray.data.read_parquet(files, columns=columns, partitioning=None)
    scored = rows.map_batches(
        SplitScorer,
        fn_constructor_kwargs={
            "use_case": use_case,
            "state_dict": state_dict,
            "hidden": hidden,
            "scaler": scaler.as_dict(),
            "split": split,
        },
        batch_format="pyarrow",
        batch_size=streaming.BATCH_ROWS,
        compute=ray.data.ActorPoolStrategy(size=max(1, actors)),
        num_gpus=1 if use_gpu else 0,
    )
    # Arrow to pandas here, as streaming.iter_batches does, so the rows get the same dtypes.
    tables = scored.iter_batches(batch_format="pyarrow", batch_size=None)
    batches = (part for table in tables for part in scored_parts(table.to_pandas(), width))
    return streaming.collect_scored(batches, learner, seed=seed)


def scored_parts(frame: pd.DataFrame, width: int):
    """(split name, rows, scores) of a frame ``SplitScorer`` returned, as the driver's own
    scoring gives them to ``streaming.collect_scored``."""
    columns = score_columns(width)
    for name in streaming.SPLITS:
        part = frame[frame[SPLIT_COLUMN] == name]
        if part.empty:
            continue
        scores = part[columns].to_numpy()  # the actors' dtype
        rows = part.drop(columns=[SPLIT_COLUMN, *columns]).reset_index(drop=True)
        yield name, rows, scores[:, 0] if width == 0 else scores


@dataclass(frozen=True)
class RunStatistics:
    """What the workers and the driver need of the training rows' statistics
    (``streaming.training_statistics``), and the seconds the pass took."""

    scaler: dict
    pos_weight: float
    rows: int
    baseline_sample: pd.DataFrame
    seconds: float


def run_statistics(files: list[str], split, use_case: str, seed: int) -> RunStatistics:
    """The statistics pass as the driver runs it in a Ray task of its own (``main``)."""
    started = time.perf_counter()
    learner = learner_of(get_use_case(use_case))
    statistics = streaming.training_statistics(files, split, learner, seed=seed)
    return RunStatistics(
        scaler=statistics.scaler.as_dict(),
        pos_weight=learner.pos_weight(statistics.targets),
        rows=statistics.rows,
        baseline_sample=statistics.baseline_sample,
        seconds=time.perf_counter() - started,
    )


def with_statistics(config: dict) -> dict:
    """``config`` with the run's scaler and class weight: as given (a local run), or from
    the statistics task the driver started (``config["statistics"]``), waited for here."""
    if "statistics" not in config:
        return config
    import ray

    statistics = ray.get(config["statistics"])
    return {**config, "scaler": statistics.scaler, "pos_weight": statistics.pos_weight}


EVALUATION_IMPORTS = ("sklearn.metrics", "sklearn.linear_model", "matplotlib")
"""What evaluation, the baseline and the figures import (seconds of a cold start): imported
while the driver only waits for the workers (``warm_imports``), not after."""


def warm_imports(modules=EVALUATION_IMPORTS) -> threading.Thread:
    """Import ``modules`` in a background thread (a failure is logged: the import that needs
    the module then raises as it would have)."""

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # reported again where the module is used
                log.warning("warm import of %s failed: %r", name, exc)

    thread = threading.Thread(target=run, name="conveyor-warm-imports", daemon=True)
    thread.start()
    return thread


def _timed(call):
    """``call()`` and the seconds it took."""
    started = time.perf_counter()
    out = call()
    return out, time.perf_counter() - started


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", required=True, help="the registered use case to train")
    parser.add_argument("--lake", required=True, help="lake root")
    parser.add_argument("--dates", required=True, help="comma-separated YYYY-MM-DD partitions")
    parser.add_argument("--storage-path", required=True, help="shared storage for runs")
    parser.add_argument("--name", default=None, help="run name (default: CONVEYOR_RUN_KEY)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--use-gpu", choices=["auto", "true", "false"], default="auto")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=None, help="default: the learner's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-failures", type=int, default=2)
    parser.add_argument(
        "--streaming-data",
        action="store_true",
        help="re-read the lake every epoch instead of caching it (data beyond the object store)",
    )
    parser.add_argument(
        "--worker-cache-mb",
        type=int,
        default=WORKER_CACHE_MB,
        help="a worker keeps its shard in memory up to this size, else streams every epoch",
    )
    parser.add_argument(
        "--evaluate-on",
        choices=["auto", "driver", "cluster"],
        default="auto",
        help="where validation and holdout are scored: the driver, or Ray Data actors on the"
        " cluster (auto: the cluster on a GPU run, whose GPUs are on the workers' nodes)",
    )
    parser.add_argument(
        "--placement-strategy",
        choices=["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"],
        default="PACK",
        help="where workers go: STRICT_SPREAD puts each on its own node",
    )
    return parser.parse_args(argv)


def _use_gpu(choice: str) -> bool:
    if choice != "auto":
        return choice == "true"
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    return_freed_memory()
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    use_case = get_use_case(args.use_case)
    learner, table = learner_of(use_case), use_case.table
    hidden = args.hidden or learner.hidden
    days = [dt.date.fromisoformat(d) for d in args.dates.split(",") if d]
    if not days:
        raise SystemExit("train: --dates names no partition")
    files = lake.partition_files(args.lake, days, table.name)
    manifests = {d.isoformat(): lake.read_manifest(args.lake, d, table.name).sha256 for d in days}
    # The driver never holds the lake: the split from one read of the time column; the
    # statistics from one streamed pass over the training files (pipelines.ml.streaming) in a
    # task of their own, which runs while the trainer starts its workers (they wait for its
    # scaler and class weight, and scale the rows they read themselves).
    phases: dict[str, float] = {}
    started = time.perf_counter()
    scanned = streaming.scan(files, table.time_column, learner.split_group)
    split = scanned.split()
    train_files = scanned.files_before(split.train_until)
    ray.init(ignore_reinit_error=True)
    # No CPU reserved for it: the workers that wait for it may hold every CPU of the cluster
    # (the driver's own pass needed none either).
    task = ray.remote(num_cpus=0, max_retries=2)(run_statistics)
    statistics_ref = task.remote(train_files, split, use_case.name, args.seed)
    use_gpu = _use_gpu(args.use_gpu)
    name = args.name or run_key(default=f"train-{'-'.join(d.isoformat() for d in days)}")
    config = {
        "use_case": use_case.name,
        "ray_data": True,
        "streaming_data": args.streaming_data,
        "worker_cache_bytes": args.worker_cache_mb * 1024**2,
        "files": train_files,
        "train_until": split.train_until.isoformat(),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "hidden": hidden,
        "seed": args.seed,
        "statistics": statistics_ref,
    }
    train_data = training_rows(config)
    if args.epochs > 1 and not args.streaming_data:
        # Several epochs: read and transform the rows once into the object store, so each
        # epoch only iterates them instead of re-reading and re-decoding the lake
        # (bench.ray_data_feed_rate). One epoch reads them once either way: they stream from
        # the lake to the workers while they train.
        train_data, phases["read_seconds"] = _timed(train_data.materialize)
    # The split, the Ray connection and (several epochs) the read, from the start.
    phases["prepare_seconds"] = time.perf_counter() - started
    phases["prepare_peak_rss_bytes"] = peak_rss_bytes()
    log.info("training name=%s workers=%d gpu=%s", name, args.num_workers, use_gpu)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        datasets={"train": train_data},
        scaling_config=ScalingConfig(
            num_workers=args.num_workers,
            use_gpu=use_gpu,
            placement_strategy=args.placement_strategy,
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(Path(args.storage_path).resolve()),
            failure_config=FailureConfig(max_failures=args.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    started = time.perf_counter()
    warm_imports()  # the driver waits for the workers now
    try:
        result = trainer.fit()
    except Exception:
        ray.get(statistics_ref)  # a failed statistics pass is the error to show
        raise
    phases["fit_seconds"] = time.perf_counter() - started
    phases["fit_peak_rss_bytes"] = peak_rss_bytes()
    statistics = ray.get(statistics_ref)
    scaler = Scaler.from_dict(statistics.scaler, learner.feature_names)
    pos_weight = statistics.pos_weight
    phases["statistics_seconds"] = statistics.seconds
    log.info("trained name=%s rows=%d", name, statistics.rows)
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True)

    # Validation and holdout scored batch by batch; only their scores and the learner's
    # evaluation columns stay (pipelines.ml.streaming).
    started = time.perf_counter()
    later_files = scanned.files_from(split.train_until)
    # On CPUs the driver scores a small network faster than actors that must read, score and
    # ship the rows back to it (bench.train_scale --evaluate-on driver,cluster).
    on_cluster = args.evaluate_on == "cluster" or (args.evaluate_on == "auto" and use_gpu)
    if on_cluster:
        validation, holdout = evaluate_on_cluster(
            later_files,
            split,
            use_case.name,
            state["model"],
            hidden,
            scaler,
            actors=args.num_workers,
            use_gpu=use_gpu,
            seed=args.seed,
        )
    else:
        score = scorer(learner, state["model"], hidden, scaler)
        validation, holdout = streaming.evaluate_splits(
            later_files, split, learner, score, seed=args.seed
        )
    threshold = learner.choose_threshold(validation.scores, learner.targets(validation.rows))
    metrics = holdout_report(holdout.score_of, holdout.rows, threshold, learner)
    phases["evaluate_seconds"] = time.perf_counter() - started
    phases["evaluate_peak_rss_bytes"] = peak_rss_bytes()
    started = time.perf_counter()
    baseline = learner.baseline(statistics.baseline_sample, validation.sample, holdout.sample)
    phases["baseline_seconds"] = time.perf_counter() - started
    phases["driver_peak_rss_bytes"] = peak_rss_bytes()
    history = list(state.get("history", []))
    metrics["final_train_loss"] = history[-1]["train_loss"] if history else float("nan")
    params = {k: v for k, v in vars(args).items() if k not in ("lake", "storage_path")}
    params.update(
        use_gpu=use_gpu,
        pos_weight=pos_weight,
        hidden=hidden,
        evaluated_on="cluster" if on_cluster else "driver",
    )
    model_dir = Path(args.storage_path).resolve() / name / "model"
    evaluation = {
        "metrics": metrics,
        "baseline_logistic_regression": baseline,
        "split": split.as_dict(),
        "history": history,
        "phases": phases,
    }
    save_model_dir(
        model_dir,
        state["model"],
        scaler,
        {
            "use_case": use_case.name,
            "hidden": hidden,
            "features": list(learner.feature_names),
            "threshold": threshold,
            "metrics": metrics,
            "train_dates": [d.isoformat() for d in days],
            "manifests": manifests,
            "split": split.as_dict(),
        },
        learner,
    )
    kept = learner.headline_rows(holdout.rows)
    learner.figures(
        holdout.score_of(kept),
        learner.targets(kept),
        threshold,
        model_dir / "evaluation",
        rows=kept,
    )
    (model_dir / "evaluation" / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    served_like = reference_scores(learner, holdout.scores, threshold, seed=args.seed)
    (model_dir / REFERENCE_SCORES).write_text(json.dumps({"scores": served_like}))
    out = TrainingResult(
        use_case=use_case.name,
        run_name=name,
        model_dir=str(model_dir),
        checkpoint=result.checkpoint.path,
        metrics=metrics,
        baseline=baseline,
        history=history,
        split=split.as_dict(),
        params=params,
        train_dates=[d.isoformat() for d in days],
        manifests=manifests,
        phases=phases,
        lineage=Lineage(
            inputs=lake_partitions(args.lake, use_case.table.name, days),
            outputs=(location(model_dir),),
        ).as_dict(),
    ).as_dict()
    write_result(out)
    log.info("training done metrics=%s", json.dumps(metrics))
    return out


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
