import datetime as dt

import numpy as np
import pytest

from pipelines.usecases.predictive_maintenance.generator import (
    OSF_LIMIT,
    GeneratorConfig,
    generate_day,
)
from pipelines.usecases.predictive_maintenance.schema import LABEL_COLUMNS, SCHEMA

DAY = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def day_frame():
    return generate_day(DAY, GeneratorConfig(machines=20))


def test_schema_and_size(day_frame):
    assert list(day_frame.columns) == list(SCHEMA)
    assert {c: str(t) for c, t in day_frame.dtypes.items()} == SCHEMA
    assert len(day_frame) == 20 * 1440
    assert not day_frame.duplicated(["machine_id", "timestamp"]).any()


def test_same_seed_and_date_give_identical_rows(day_frame):
    again = generate_day(DAY, GeneratorConfig(machines=20))
    assert day_frame.equals(again)
    other_day = generate_day(DAY + dt.timedelta(days=1), GeneratorConfig(machines=20))
    assert not np.allclose(day_frame["torque_nm"], other_day["torque_nm"])


def test_timestamps_stay_inside_the_day(day_frame):
    assert day_frame["timestamp"].min().date() == DAY
    assert day_frame["timestamp"].max().date() == DAY


def test_heat_dissipation_rule(day_frame):
    gap = day_frame["process_temperature_k"] - day_frame["air_temperature_k"]
    expected = (gap < 8.6) & (day_frame["rotational_speed_rpm"] < 1380)
    # Values are rounded after the rule is applied; allow disagreement only at the boundary.
    disagree = expected.astype(int) != day_frame["hdf"]
    assert (gap[disagree].sub(8.6).abs() < 0.02).all()


def test_power_rule(day_frame):
    power = day_frame["torque_nm"] * day_frame["rotational_speed_rpm"] * 2 * np.pi / 60
    expected = (power < 3500) | (power > 9000)
    disagree = expected.astype(int) != day_frame["pwf"]
    assert disagree.mean() < 0.001, f"power rule violated on {disagree.sum()} rows"


def test_overstrain_rule(day_frame):
    limit = day_frame["product_type"].map(OSF_LIMIT).astype(float)
    strain = day_frame["tool_wear_min"] * day_frame["torque_nm"]
    flagged = day_frame[day_frame["osf"] == 1]
    assert len(flagged) > 0
    assert (strain[flagged.index] > limit[flagged.index] * 0.999).all()


def test_tool_wear_failure_within_published_band(day_frame):
    failed = day_frame[day_frame["twf"] == 1]
    assert len(failed) > 0
    assert failed["tool_wear_min"].between(200, 245).all()


def test_machine_failure_is_any_failure_mode(day_frame):
    modes = day_frame[[c for c in LABEL_COLUMNS if c != "machine_failure"]].max(axis=1)
    assert (day_frame["machine_failure"] == modes).all()
    assert 0.005 < day_frame["machine_failure"].mean() < 0.15
    assert day_frame["rnf"].mean() < 0.005


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="machines must be >= 1"):
        generate_day(DAY, GeneratorConfig(machines=0))


def test_injected_faults_are_deterministic_and_of_the_requested_size():
    from pipelines.usecases.predictive_maintenance.generator import FaultConfig, inject_faults

    frame = generate_day(DAY, GeneratorConfig(machines=5, minutes=200))
    faults = FaultConfig(null_ratio=0.1, out_of_range_ratio=0.05, duplicate_ratio=0.02)
    once, again = inject_faults(frame, faults), inject_faults(frame, faults)
    assert once.equals(again)
    assert 0.07 < once["air_temperature_k"].isna().mean() < 0.13
    assert 0.03 < (once["torque_nm"] == 1000.0).mean() < 0.07
    extra = len(once) - len(frame)
    assert 0.01 * len(frame) < extra < 0.03 * len(frame)
    assert once.duplicated(["machine_id", "timestamp"]).sum() == extra
    assert "firmware_version" in inject_faults(frame, FaultConfig(schema_drift="extra_column"))
    assert "torque_nm" not in inject_faults(frame, FaultConfig(schema_drift="missing_column"))
    with pytest.raises(ValueError, match="null_ratio must be in"):
        FaultConfig(null_ratio=2)
