"""The streamed training inputs and evaluation equal the in-memory computation on the same
lake: split boundaries, scaler statistics, class weights, threshold and holdout metrics.
Batches are made small so that every partition is read in several of them."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.catalog import get_use_case, learner_of
from pipelines.data import lake
from pipelines.data.ingest import ingest_days, source_arguments
from pipelines.ml import streaming
from pipelines.ml.evaluation import (
    TimeSplit,
    best_f1_threshold,
    binary_metrics,
    holdout_report,
)
from pipelines.ml.features import Scaler
from ray_jobs.train import scorer

DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=d) for d in range(3)]


def _lake(tmp_path, name: str, fields: dict):
    use_case = get_use_case(name)
    root = str(tmp_path / "lake")
    ingest_days(DAYS, root, table=use_case.table, **source_arguments(use_case, fields))
    files = lake.partition_files(root, DAYS, use_case.table.name)
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return use_case, learner_of(use_case), files, frame


@pytest.mark.parametrize(
    "name, fields",
    [
        ("predictive_maintenance", {"machines": 6}),
        ("visual_quality_control", {"images": 120}),  # split by lot as well as by time
    ],
)
def test_streamed_split_statistics_and_metrics_equal_the_in_memory_ones(
    tmp_path, monkeypatch, name, fields
):
    monkeypatch.setattr(streaming, "BATCH_ROWS", 500)
    use_case, learner, files, frame = _lake(tmp_path, name, fields)
    time_column = use_case.table.time_column

    # In memory, as the driver did before.
    split = TimeSplit.of(frame, time_column, learner.split_group)
    train = split.train(frame)
    scaler = Scaler.fit(learner.features(train), learner.feature_names)

    scanned = streaming.scan(files, time_column, learner.split_group)
    assert scanned.split() == split
    assert sum(scanned.rows) == len(frame)
    statistics = streaming.training_statistics(
        scanned.files_before(split.train_until), split, learner, sample_rows=50
    )
    # float64 moments: equal to the exact statistics, and to the float32 in-memory fit
    # within float32's own error.
    exact = Scaler.fit(learner.features(train).astype(np.float64), learner.feature_names)
    np.testing.assert_allclose(statistics.scaler.mean, exact.mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(statistics.scaler.std, exact.std, rtol=1e-9)
    np.testing.assert_allclose(statistics.scaler.std, scaler.std, rtol=2e-4)
    assert statistics.rows == len(train)
    assert learner.pos_weight(statistics.targets) == learner.pos_weight(learner.targets(train))
    assert len(statistics.baseline_sample) == 50  # bounded, whatever the rows

    # Any network will do: both paths must agree on its scores' metrics.
    model = learner.build_model(len(learner.feature_names), hidden=8)
    score = scorer(learner, model.state_dict(), 8, scaler)
    validation_rows, holdout_rows = split.validation(frame), split.holdout(frame)
    threshold = learner.choose_threshold(score(validation_rows), learner.targets(validation_rows))
    expected = holdout_report(score, holdout_rows, threshold, learner)

    validation, holdout = streaming.evaluate_splits(
        scanned.files_from(split.train_until), split, learner, score, sample_rows=50
    )
    assert len(validation.rows) == len(validation_rows) and len(holdout.rows) == len(holdout_rows)
    got = learner.choose_threshold(validation.scores, learner.targets(validation.rows))
    assert got == pytest.approx(threshold, abs=1e-9)
    actual = holdout_report(holdout.score_of, holdout.rows, got, learner)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert actual[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        else:
            assert actual[key] == value, key
    if learner.evaluation_columns:  # only what the metrics read is kept
        assert list(holdout.rows.columns) == list(learner.evaluation_columns)
    # The baseline fits and scores on the bounded samples (what its reader needs is there).
    baseline = learner.baseline(statistics.baseline_sample, validation.sample, holdout.sample)
    assert use_case.gate.metric in baseline


def test_the_bounded_sample_is_uniform_and_seeded():
    rows = pd.DataFrame({"i": np.arange(10_000)})
    picks = []
    for seed in (0, 0, 1):
        sample = streaming.BottomK(1_000, seed)
        for start in range(0, len(rows), 700):
            sample.add(rows.iloc[start : start + 700])
        picks.append(sorted(sample.sample()["i"]))
    assert picks[0] == picks[1] and picks[0] != picks[2]
    assert len(picks[0]) == 1_000
    assert 4_000 < np.mean(picks[0]) < 6_000  # from the whole range, not the first batches


@pytest.mark.parametrize("k, batch", [(1_000, 700), (1_000, 37), (50, 5_000), (20_000, 900)])
def test_the_bounded_sample_is_the_rows_of_the_k_smallest_keys_in_their_order(k, batch):
    """However the batches come and whenever the sample cuts back what it holds, it is the
    rows whose keys (one draw per row, in order, from the seed) are the k smallest."""
    rows = pd.DataFrame({"i": np.arange(10_000), "x": np.arange(10_000) * 0.5})
    sample = streaming.BottomK(k, seed=3)
    for start in range(0, len(rows), batch):
        sample.add(rows.iloc[start : start + batch])
    # The same generator, drawn batch by batch.
    keys = np.concatenate(list(_draws(np.random.default_rng(3), len(rows), batch)))
    expected = np.sort(np.argsort(keys, kind="stable")[:k])
    got = sample.sample()
    assert got["i"].tolist() == expected.tolist()
    assert list(got.index) == list(range(len(got)))
    assert got.equals(sample.sample())  # reading it twice changes nothing


def _draws(rng, n: int, batch: int):
    for start in range(0, n, batch):
        yield rng.random(min(batch, n - start))


def test_the_f1_threshold_from_one_sort_equals_a_full_evaluation_per_candidate():
    candidates = np.linspace(0.05, 0.95, 19)
    rng = np.random.default_rng(1)
    for draw in range(40):
        n = int(rng.integers(1, 300))
        target = (rng.random(n) < rng.random()).astype(np.float32)
        scores = np.clip(rng.random(n) * 0.5 + target * rng.random() * 0.5, 0, 1)
        scores = np.round(scores, 2).astype(np.float32) if draw % 3 == 0 else scores
        f1 = [binary_metrics(scores, target, t)["f1"] for t in candidates]
        assert best_f1_threshold(scores, target) == candidates[int(np.argmax(f1))], draw


def test_no_training_data_is_a_one_line_error(tmp_path):
    empty = tmp_path / "part-0.parquet"
    pd.DataFrame({"timestamp": pd.to_datetime([])}).to_parquet(empty)
    with pytest.raises(ValueError, match="1 partition file.s. hold no rows: .*part-0.parquet"):
        streaming.scan([str(empty)], "timestamp")
    with pytest.raises(ValueError, match="no partition files"):
        streaming.scan([], "timestamp")


@pytest.mark.parametrize(
    "name, fields, unread",
    [
        ("predictive_maintenance", {"machines": 3}, {"machine_id"}),
        ("visual_quality_control", {"images": 40}, {"lot"}),
    ],
)
def test_training_reads_only_the_columns_the_model_uses(tmp_path, name, fields, unread):
    """The training rows are read with the learner's ``training_columns`` and the time column
    only: the features and targets made from them equal those of every column, and columns
    the model never reads (a machine's id, a lot) are not decoded."""
    use_case, learner, files, frame = _lake(tmp_path, name, fields)
    columns = streaming.lake_columns(learner, use_case.table.time_column, evaluating=False)
    assert unread <= set(frame.columns) and not unread & set(columns)
    read = pd.concat([batch for _, batch in streaming.iter_batches(files, columns)])
    assert sorted(read.columns) == sorted(columns)
    np.testing.assert_array_equal(learner.features(read), learner.features(frame))
    np.testing.assert_array_equal(learner.targets(read), learner.targets(frame))


@pytest.mark.parametrize(
    "name, fields",
    [("predictive_maintenance", {"machines": 3}), ("visual_quality_control", {"images": 60})],
)
def test_the_rows_ray_data_reads_for_training_are_the_driver_s_training_rows(
    tmp_path, name, fields
):
    """``training_tensors`` (Ray Data's transform of each block of the lake) gives the
    features and targets of exactly the rows before the cutoff, as the driver computes them."""
    import pyarrow.parquet as pq

    use_case, learner, files, frame = _lake(tmp_path, name, fields)
    time_column = use_case.table.time_column
    split = TimeSplit.of(frame, time_column, learner.split_group)
    columns = streaming.lake_columns(learner, time_column, evaluating=False)
    blocks = [
        streaming.training_tensors(
            pq.read_table(f, columns=columns),
            learner=learner,
            time_column=time_column,
            until=split.train_until,
        )
        for f in files
    ]
    train = split.train(frame)
    features = np.concatenate([b["features"] for b in blocks])
    np.testing.assert_array_equal(features, learner.features(train))
    np.testing.assert_array_equal(
        np.concatenate([b["target"] for b in blocks]), learner.targets(train)
    )
    assert features.dtype == np.float32
