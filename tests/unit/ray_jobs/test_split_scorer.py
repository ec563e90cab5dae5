"""What a scoring actor returns for a batch, put back together by the driver, is what the
driver's own scoring gives: the same rows, scores and samples (without Ray: the actor's
work called directly; tests/integration/ray_jobs/test_cluster_evaluation.py runs it on a
cluster)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.catalog import get_use_case, learner_of
from pipelines.data import lake
from pipelines.data.ingest import ingest_days, source_arguments
from pipelines.ml import streaming
from ray_jobs.train import SplitScorer, score_shape, scored_parts, scorer

DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=d) for d in range(3)]


@pytest.mark.parametrize(
    "name, fields",
    [
        ("predictive_maintenance", {"machines": 4}),
        ("visual_quality_control", {"images": 60}),
    ],
)
def test_the_actors_batches_collected_equal_the_drivers_scoring(
    tmp_path, monkeypatch, name, fields
):
    monkeypatch.setattr(streaming, "BATCH_ROWS", 300)
    use_case = get_use_case(name)
    learner = learner_of(use_case)
    root = str(tmp_path / "lake")
    ingest_days(DAYS, root, table=use_case.table, **source_arguments(use_case, fields))
    files = [str(f) for f in lake.partition_files(root, DAYS, use_case.table.name)]
    scanned = streaming.scan(files, use_case.table.time_column, learner.split_group)
    split = scanned.split()
    scaler = streaming.training_statistics(
        scanned.files_before(split.train_until), split, learner
    ).scaler
    torch.manual_seed(0)
    state = learner.build_model(len(learner.feature_names), hidden=8).state_dict()
    later = scanned.files_from(split.train_until)

    expected = streaming.evaluate_splits(later, split, learner, scorer(learner, state, 8, scaler))
    actor = SplitScorer(name, state, 8, scaler.as_dict(), split)
    width, _ = score_shape(learner, state, 8)
    frames = [actor(batch) for _, batch in streaming.iter_batches(later)]
    got = streaming.collect_scored(
        (part for frame in frames for part in scored_parts(frame, width)), learner
    )
    for mine, theirs in zip(expected, got, strict=True):
        pd.testing.assert_frame_equal(mine.rows, theirs.rows, check_dtype=False)
        np.testing.assert_array_equal(mine.scores, theirs.scores)
        assert mine.scores.dtype == theirs.scores.dtype
        pd.testing.assert_frame_equal(mine.sample, theirs.sample, check_dtype=False)
    assert (width == 0) == (name == "predictive_maintenance")


def test_a_batch_of_training_rows_only_gives_an_empty_frame_of_the_same_columns(tmp_path):
    use_case = get_use_case("predictive_maintenance")
    learner = learner_of(use_case)
    root = str(tmp_path / "lake")
    ingest_days(DAYS, root, table=use_case.table, **source_arguments(use_case, {"machines": 2}))
    files = [str(f) for f in lake.partition_files(root, DAYS, use_case.table.name)]
    scanned = streaming.scan(files, use_case.table.time_column)
    split = scanned.split()
    state = learner.build_model(len(learner.feature_names), hidden=8).state_dict()
    scaler = streaming.training_statistics(files, split, learner).scaler
    actor = SplitScorer(use_case.name, state, 8, scaler.as_dict(), split)
    batch = pd.read_parquet(files[0])
    early = batch[batch[use_case.table.time_column] < split.train_until]
    late = batch[batch[use_case.table.time_column] >= split.train_until]
    empty, scored = actor(early), actor(pd.concat([late, pd.read_parquet(files[-1])]))
    assert empty.empty and not scored.empty
    assert list(empty.columns) == list(scored.columns)
