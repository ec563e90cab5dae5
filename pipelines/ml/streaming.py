"""A training run's inputs and evaluation without holding the lake in one process.

The training driver used to concatenate every partition into one frame to split it by time,
fit the scaler and score validation and holdout. Its memory then grew with the data. Here
each step reads the partitions' Parquet files in row batches (``BATCH_ROWS``) and keeps only
what the step's result needs:

- ``scan`` reads the time column (and the split's group column) once: the period's bounds,
  each file's first and last timestamp, each group's span. The split (``TimeSplit``) follows
  from them, and each later step opens only the files its rows can be in.
- ``training_statistics``: the scaler's means and standard deviations from running moments,
  the targets for the class weights (one small integer per training row), and a seeded
  bounded sample of training rows for the baseline.
- ``evaluate_splits``: validation and holdout rows scored batch by batch with the trained
  model; it keeps each row's scores and the learner's ``evaluation_columns`` (all columns
  when the learner names none), plus bounded samples for the baseline.

The results equal the in-memory computation (same split boundaries, scaler statistics to
float tolerance, metrics on the same rows and scores): a test compares them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.ml.evaluation import BASELINE_ROWS, TimeSplit
from pipelines.ml.features import Scaler

if TYPE_CHECKING:
    from pipelines.ml.learner import Learner

BATCH_ROWS = 65_536
"""Rows per batch read: what one step holds of the lake at a time, besides its result."""


def iter_batches(
    files: Sequence[str], columns: Sequence[str] | None = None, batch_rows: int | None = None
) -> Iterator[tuple[int, pd.DataFrame]]:
    """(file index, batch) over ``files`` in order, ``columns`` only when given, at most
    ``batch_rows`` (default ``BATCH_ROWS``) rows per batch."""
    import fsspec
    import pyarrow.parquet as pq

    batch_rows = batch_rows or BATCH_ROWS
    for index, path in enumerate(files):
        with fsspec.open(str(path), "rb") as handle:
            parquet = pq.ParquetFile(handle)
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                yield index, batch.to_pandas()


@dataclass(frozen=True)
class Scan:
    """What one read of the time (and group) column tells: each file's first and last
    timestamp and rows, and each group's span."""

    files: list[str]
    first: list[pd.Timestamp]
    last: list[pd.Timestamp]
    rows: list[int]
    time_column: str
    spans: pd.DataFrame | None = None

    def split(self) -> TimeSplit:
        return TimeSplit.from_bounds(min(self.first), max(self.last), self.time_column, self.spans)

    def files_before(self, until: pd.Timestamp) -> list[str]:
        """The files with a row before ``until``: the only ones the training rows are in."""
        return [f for f, first in zip(self.files, self.first, strict=True) if first < until]

    def files_from(self, start: pd.Timestamp) -> list[str]:
        """The files with a row at or after ``start`` (validation and holdout)."""
        return [f for f, last in zip(self.files, self.last, strict=True) if last >= start]


def scan(files: Sequence[str], time_column: str, group: str | None = None) -> Scan:
    """Read the time column (and ``group``) of ``files`` once, in batches."""
    files = [str(f) for f in files]
    if not files:
        raise ValueError("training data: no partition files to read")
    first = [pd.NaT] * len(files)
    last = [pd.NaT] * len(files)
    rows = [0] * len(files)
    spans: pd.DataFrame | None = None
    columns = [time_column] + ([group] if group else [])
    for index, batch in iter_batches(files, columns):
        if batch.empty:
            continue
        times = batch[time_column]
        low, high = times.min(), times.max()
        first[index] = low if first[index] is pd.NaT else min(first[index], low)
        last[index] = high if last[index] is pd.NaT else max(last[index], high)
        rows[index] += len(batch)
        if group:
            part = batch.groupby(group, observed=True)[time_column].agg(["min", "max"])
            spans = part if spans is None else _merge_spans(spans, part)
    empty = [f for f, n in zip(files, rows, strict=True) if n == 0]
    if empty:
        raise ValueError(f"training data: {len(empty)} partition file(s) hold no rows: {empty[0]}")
    return Scan(files, first, last, rows, time_column, spans)


def _merge_spans(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    both = pd.concat([a, b])
    return both.groupby(level=0).agg({"min": "min", "max": "max"})


class RunningMoments:
    """Mean and population standard deviation per column over batches (Chan et al.'s
    parallel update, in float64), so the scaler equals ``Scaler.fit`` on all rows at once."""

    def __init__(self, width: int):
        self.count = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def update(self, values: np.ndarray) -> None:
        if not len(values):
            return
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    def scaler(self, feature_names: Sequence[str]) -> Scaler:
        if not self.count:
            raise ValueError("training data: no rows before the split's training cutoff")
        std = np.sqrt(self.m2 / self.count)
        std[std == 0] = 1.0
        return Scaler(self.mean.tolist(), std.tolist(), list(feature_names))


class BottomK:
    """A seeded uniform sample of at most ``k`` rows from batches of unknown total: each row
    draws a random key and the ``k`` smallest keys stay (bounded memory, one pass).

    Rows whose key cannot be among the ``k`` smallest (not below the ``k``-th smallest seen
    so far) are dropped as they come; the others are held as they came and cut back to the
    ``k`` smallest only when they reach ``HOLD`` times ``k``, so each row is copied a bounded
    number of times whatever the number of batches. The sample is the rows of the ``k``
    smallest keys in the order they came, whenever the cuts happen."""

    HOLD = 1.1

    def __init__(self, k: int, seed: int):
        self.k, self.rng = k, np.random.default_rng(seed)
        self.bound = np.inf  # the k-th smallest key seen so far, once k were seen
        self.keys: list[np.ndarray] = []
        self.parts: list[pd.DataFrame] = []
        self.held = 0

    def add(self, batch: pd.DataFrame) -> None:
        if batch.empty:
            return
        drawn = self.rng.random(len(batch))
        entering = drawn < self.bound
        if not entering.all():
            drawn, batch = drawn[entering], batch[entering]
            if batch.empty:
                return
        self.keys.append(drawn)
        self.parts.append(batch)
        self.held += len(batch)
        if self.held >= self.HOLD * self.k:
            self._cut()

    def _cut(self) -> None:
        keys = np.concatenate(self.keys)
        if len(keys) > self.k:
            kept = np.zeros(len(keys), dtype=bool)
            kept[np.argpartition(keys, self.k - 1)[: self.k]] = True
            # Each part's kept rows, then one concatenation of those alone.
            masks = np.split(kept, np.cumsum([len(part) for part in self.parts])[:-1])
            self.parts = [part[mask] for part, mask in zip(self.parts, masks, strict=True)]
            keys = keys[kept]
        if len(keys) == self.k:
            self.bound = keys.max()
        rows = pd.concat(self.parts, ignore_index=True)
        self.keys, self.parts, self.held = [keys], [rows], len(keys)

    def sample(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame()
        self._cut()
        return self.parts[0]


@dataclass
class TrainingStatistics:
    scaler: Scaler
    targets: np.ndarray
    """The training rows' targets, in the smallest integer type that holds them."""
    baseline_sample: pd.DataFrame
    rows: int


def training_statistics(
    files: Sequence[str],
    split: TimeSplit,
    learner: Learner,
    *,
    sample_rows: int = BASELINE_ROWS,
    seed: int = 0,
) -> TrainingStatistics:
    """The scaler, class targets and a baseline sample of the rows before the training
    cutoff, in one pass over ``files``."""
    moments = RunningMoments(len(learner.feature_names))
    targets: list[np.ndarray] = []
    sample = BottomK(sample_rows, seed)
    columns = lake_columns(learner, split.time_column, evaluating=True)
    for _, batch in iter_batches(files, columns):
        rows = batch[batch[split.time_column] < split.train_until]
        if rows.empty:
            continue
        moments.update(learner.features(rows))
        targets.append(_compact(learner.targets(rows)))
        sample.add(_sampled_columns(rows, learner))
    all_targets = np.concatenate(targets) if targets else np.empty(0, dtype=np.int8)
    return TrainingStatistics(
        moments.scaler(learner.feature_names), all_targets, sample.sample(), len(all_targets)
    )


def training_tensors(
    block, *, learner: Learner, time_column: str, until: pd.Timestamp
) -> dict[str, np.ndarray]:
    """One block of lake rows (an Arrow table) as the training loop takes them: the features
    (unscaled) and the targets of the rows before ``until``. Made pandas as ``iter_batches``
    makes them (NumPy-backed columns; pandas batches from Ray Data are Arrow-backed and much
    slower to compute features on), so training sees the rows the statistics saw."""
    rows = block.to_pandas()
    rows = rows[rows[time_column] < until]
    return {"features": learner.features(rows), "target": learner.targets(rows)}


SMALL_INTS = (np.int8, np.int16, np.int32)


def _smallest_int(values: np.ndarray):
    """The smallest of ``SMALL_INTS`` that holds every one of ``values`` (whole numbers, not
    empty); None when none does."""
    low, high = values.min(), values.max()
    return next((k for k in SMALL_INTS if np.iinfo(k).min <= low and high <= np.iinfo(k).max), None)


def _compact(values: np.ndarray) -> np.ndarray:
    """Class labels as the smallest integer type; other values as they are."""
    values = np.asarray(values)
    if values.size and np.all(np.mod(values, 1) == 0):
        kind = _smallest_int(values)
        if kind is not None:
            return values.astype(kind)
    return values


@dataclass
class ScoredRows:
    """Rows of one split with their scores (``scores[i]`` belongs to ``rows.iloc[i]``; the
    index is 0..n-1, so ``score_of`` maps any subset back to its scores)."""

    rows: pd.DataFrame
    scores: np.ndarray
    sample: pd.DataFrame = field(default_factory=pd.DataFrame)
    """A bounded sample of the split's rows with every column (the baseline's)."""

    def score_of(self, subset: pd.DataFrame) -> np.ndarray:
        return self.scores[subset.index.to_numpy()]


SPLITS = ("validation", "holdout")


def evaluated_rows(batch: pd.DataFrame, split: TimeSplit) -> Iterator[tuple[str, pd.DataFrame]]:
    """(split name, rows) for the validation and holdout rows of ``batch``, non-empty only."""
    for name, rows in zip(SPLITS, (split.validation(batch), split.holdout(batch)), strict=True):
        if not rows.empty:
            yield name, rows


def kept_columns(rows: pd.DataFrame, learner: Learner) -> pd.DataFrame:
    """What evaluation keeps of scored rows: the learner's ``evaluation_columns`` (all when it
    names none) and the columns a baseline reads."""
    keep = learner.evaluation_columns
    if not keep:
        return rows
    wanted = dict.fromkeys([*keep, *_sampled_columns(rows, learner).columns])
    return rows[[c for c in wanted if c in rows.columns]]


def collect_scored(
    scored: Iterable[tuple[str, pd.DataFrame, np.ndarray]],
    learner: Learner,
    *,
    sample_rows: int = BASELINE_ROWS,
    seed: int = 0,
) -> tuple[ScoredRows, ScoredRows]:
    """(validation, holdout) from (split name, rows, scores) batches in the lake's row order,
    wherever they were scored: the rows' ``evaluation_columns`` and scores, and seeded
    bounded samples for the baseline (the same rows in the same order give the same
    samples, however they are cut into batches)."""
    keep = learner.evaluation_columns
    parts: dict[str, list] = {name: [] for name in SPLITS}
    scores: dict[str, list] = {name: [] for name in SPLITS}
    samples = {name: BottomK(sample_rows, seed + n) for n, name in enumerate(SPLITS, 1)}
    for name, rows, batch_scores in scored:
        scores[name].append(np.asarray(batch_scores))
        parts[name].append(_slim(rows[list(keep)] if keep else rows))
        samples[name].add(_sampled_columns(rows, learner))
    return tuple(
        ScoredRows(
            pd.concat(parts[name], ignore_index=True) if parts[name] else pd.DataFrame(),
            np.concatenate(scores[name]) if scores[name] else np.empty(0),
            samples[name].sample(),
        )
        for name in SPLITS
    )


def evaluate_splits(
    files: Sequence[str],
    split: TimeSplit,
    learner: Learner,
    score: Callable[[pd.DataFrame], np.ndarray],
    *,
    sample_rows: int = BASELINE_ROWS,
    seed: int = 0,
) -> tuple[ScoredRows, ScoredRows]:
    """(validation, holdout): each split's rows scored batch by batch with ``score`` in this
    process, keeping the learner's ``evaluation_columns`` (all when it names none)."""
    scored = (
        (name, rows, score(rows))
        for _, batch in iter_batches(
            files, lake_columns(learner, split.time_column, evaluating=True)
        )
        for name, rows in evaluated_rows(batch, split)
    )
    return collect_scored(scored, learner, sample_rows=sample_rows, seed=seed)


def lake_columns(learner: Learner, time_column: str, *, evaluating: bool) -> list[str] | None:
    """The lake columns a pass over the rows reads: the time column and the learner's
    ``training_columns``; with ``evaluating`` (the statistics and evaluation passes, which
    keep a baseline's sample and what the metrics read) its evaluation columns too, or every
    column (None) when it names none."""
    if evaluating and not learner.evaluation_columns:
        return None
    wanted = [time_column, *learner.training_columns]
    if evaluating:
        wanted += learner.evaluation_columns
    return list(dict.fromkeys(wanted))


def _sampled_columns(rows: pd.DataFrame, learner: Learner) -> pd.DataFrame:
    """What a baseline reads of a row: the model's inputs and the evaluation columns (every
    column when the learner names no evaluation columns)."""
    if not learner.evaluation_columns:
        return rows
    wanted = dict.fromkeys([*learner.inputs, *learner.evaluation_columns, learner.target])
    return rows[[c for c in wanted if c in rows.columns]]


def _slim(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns in the smallest signed type that holds them (labels are mostly 0/1)."""
    slim = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
            array = values.to_numpy()
            if array.size and array.dtype.kind in "iu":
                kind = _smallest_int(array)
                if kind is not None and kind().itemsize < array.dtype.itemsize:
                    slim[column] = array.astype(kind)
    return frame.assign(**slim) if slim else frame
