"""Drift against the training data: a day like the training days is not flagged, a sensor
offset or a lighting change is, on the feature that moved and no other."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.monitoring.drift import compare, psi_categorical, psi_numeric
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig, generate_day
from pipelines.usecases.visual_quality_control import generator as images

NUMERIC = [
    "air_temperature_k",
    "process_temperature_k",
    "rotational_speed_rpm",
    "torque_nm",
    "tool_wear_min",
]
TRAINING_DAY, SERVED_DAY = dt.date(2026, 11, 2), dt.date(2026, 11, 9)


def _telemetry(day, **config) -> pd.DataFrame:
    frame = generate_day(day, GeneratorConfig(machines=50, minutes=120, **config))
    return frame.sample(1500, random_state=0)  # served traffic: a sample of the fleet


def test_a_served_day_like_the_training_days_shows_no_drift():
    report = compare(
        _telemetry(TRAINING_DAY),
        _telemetry(SERVED_DAY),
        numeric=NUMERIC,
        categorical=["product_type"],
    )
    assert report.drifted == [], report.as_dict()


def test_a_miscalibrated_sensor_is_flagged_on_its_feature_alone():
    report = compare(
        _telemetry(TRAINING_DAY),
        _telemetry(SERVED_DAY, sensor_offset_k=4.0),
        numeric=NUMERIC,
        categorical=["product_type"],
    )
    assert report.drifted == ["air_temperature_k"], report.as_dict()
    air = next(f for f in report.features if f.feature == "air_temperature_k")
    assert air.psi > 0.5 and air.p_value < 1e-6
    assert air.current_mean - air.reference_mean == pytest.approx(4.0, abs=0.5)


def test_a_new_product_mix_and_shifted_scores_are_flagged():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"product_type": rng.choice(["L", "M", "H"], 2000, p=[0.5, 0.3, 0.2])})
    current = pd.DataFrame({"product_type": rng.choice(["L", "M", "H"], 2000, p=[0.2, 0.3, 0.5])})
    scores = (rng.beta(1, 9, 2000), rng.beta(3, 5, 2000))  # the model now sees more risk
    report = compare(reference, current, categorical=["product_type"], scores=scores)
    assert report.drifted == ["product_type", "prediction"]


def test_a_lighting_change_moves_brightness_not_focus():
    def day(lighting):
        config = images.GeneratorConfig(images=240, lighting=lighting)
        return images.generate_day(TRAINING_DAY, config)

    numeric = ["brightness", "contrast", "focus"]
    assert compare(day(1.0), day(1.0), numeric=numeric).drifted == []
    assert "brightness" in compare(day(1.0), day(1.3), numeric=numeric).drifted


def test_psi_is_the_textbook_sum_over_the_reference_deciles():
    reference = np.arange(1000, dtype=float)  # deciles: 10 bins of 100 values
    centers = np.arange(50.0, 1000.0, 100.0)
    current = np.repeat(centers, [280] + [80] * 9)  # shares 0.28, then 0.08 in each other
    expected = (0.28 - 0.1) * np.log(0.28 / 0.1) + 9 * (0.08 - 0.1) * np.log(0.08 / 0.1)
    assert psi_numeric(reference, current) == pytest.approx(expected, rel=1e-3)
    assert psi_categorical(["a"] * 50 + ["b"] * 50, ["a"] * 50 + ["b"] * 50) == 0.0


def test_a_missing_column_is_a_one_line_error():
    frame = pd.DataFrame({"torque_nm": [1.0, 2.0]})
    with pytest.raises(ValueError, match="column 'air_temperature_k' is not in the current rows"):
        compare(
            frame.assign(air_temperature_k=1.0),
            frame,
            numeric=["torque_nm", "air_temperature_k"],
        )
