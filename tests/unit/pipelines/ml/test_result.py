"""The training result is one typed object from the driver to the tasks after it."""

import pytest

from pipelines.ml.result import TrainingResult


def test_a_job_result_round_trips_and_its_metrics_flatten_for_the_tracking_server():
    result = TrainingResult(
        model_dir="/m",
        train_dates=["2026-11-01"],
        metrics={"f1": 0.9, "recall_by_mode": {"a": 0.5, "b": None}, "ok": True},
    )
    assert TrainingResult.parse(result.as_dict()) == result
    assert result.scalar_metrics() == {"f1": 0.9, "recall_by_mode.a": 0.5}


def test_a_result_missing_or_adding_a_key_is_one_line_naming_it():
    with pytest.raises(ValueError, match=r"^training result: missing metrics; unknown sorce$"):
        TrainingResult.parse({"model_dir": "/m", "train_dates": [], "sorce": 1})
