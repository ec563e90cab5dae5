"""Serving builds features from request records without a DataFrame; training builds them
from the lake's DataFrame. Any difference between the two is training/serving skew."""

import datetime as dt

import numpy as np

from pipelines.catalog import learner_of
from pipelines.data import lake
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_day
from pipelines.usecases.predictive_maintenance.learner import (
    FEATURE_NAMES,
    INPUT_COLUMNS,
    LEARNER,
    SAMPLE_RECORDS,
    feature_matrix,
)

record_columns = LEARNER.record_columns


def test_records_give_the_same_features_as_the_lake_frame(tmp_path):
    day = dt.date(2026, 11, 1)
    ingest_day(day, str(tmp_path), generator=GeneratorConfig(machines=5, minutes=240))
    frame = lake.read_partition(str(tmp_path), day, table="telemetry")
    records = frame[list(INPUT_COLUMNS)].to_dict("records")

    from_lake = feature_matrix(frame)
    from_records = feature_matrix(record_columns(records))

    assert from_lake.shape == (len(frame), len(FEATURE_NAMES))
    assert from_records.dtype == from_lake.dtype == np.float32
    np.testing.assert_array_equal(from_records, from_lake)
    # Every product type occurs, so the one-hot columns were compared on real values.
    assert from_lake[:, :3].sum(axis=0).min() > 0


def test_one_record_is_one_row_with_its_product_one_hot():
    record = SAMPLE_RECORDS[0]
    row = feature_matrix(record_columns([record]))[0]
    one_hot = dict(zip(("L", "M", "H"), row[:3], strict=True))
    assert one_hot == {t: float(t == record["product_type"]) for t in ("L", "M", "H")}
    gap = record["process_temperature_k"] - record["air_temperature_k"]
    assert row[FEATURE_NAMES.index("temperature_gap_k")] == np.float32(gap)


def test_the_catalog_finds_the_learner_and_its_sample_records_are_valid_requests():
    learner = learner_of("predictive_maintenance")
    assert learner is LEARNER
    for record in learner.sample_records:
        learner.request_model.model_validate(record)


def test_headline_rows_leave_out_random_only_failures():
    import pandas as pd

    zeros = {m: [0, 0, 0] for m in ("twf", "hdf", "pwf", "osf")}
    frame = pd.DataFrame({**zeros, "rnf": [0, 1, 1], "machine_failure": [0, 1, 1]})
    frame.loc[2, "osf"] = 1  # RNF together with a real failure mode stays
    assert LEARNER.headline_rows(frame).index.tolist() == [0, 2]
