import datetime as dt

import pandas as pd
import pytest

from pipelines import lake
from pipelines.ingest import ingest_day
from pipelines.sources.generator import GeneratorConfig, generate_day
from pipelines.validation import ValidationFailed, validate_frame, validate_partition

DAY = dt.date(2026, 11, 3)


@pytest.fixture(scope="module")
def good_frame():
    return generate_day(DAY, GeneratorConfig(machines=10, minutes=240))


def test_good_partition_passes_and_result_is_kept(tmp_path, good_frame):
    report = validate_frame(good_frame, DAY, tmp_path)
    assert report.success, report.critical_failures
    assert report.evaluated >= 12
    assert (tmp_path / "date=2026-11-03" / "result.json").exists()


def test_critical_failures_name_expectation_observed_and_expected(tmp_path, good_frame):
    bad = good_frame.copy()
    bad.loc[5, "torque_nm"] = 900.0
    bad = pd.concat([bad, bad.iloc[:3]], ignore_index=True)
    report = validate_frame(bad, DAY, tmp_path)
    assert not report.success
    by_type = {(f["expectation"], str(f["column"])): f for f in report.critical_failures}
    torque = by_type[("expect_column_values_to_be_between", "torque_nm")]
    assert torque["observed"]["unexpected_count"] == 1
    assert torque["observed"]["sample"] == [900.0]
    assert torque["expected"]["max_value"] == 100
    assert ("expect_compound_columns_to_be_unique", "['machine_id', 'timestamp']") in by_type


def test_rows_outside_the_day_fail_freshness(tmp_path, good_frame):
    shifted = good_frame.copy()
    shifted.loc[0, "timestamp"] = shifted.loc[0, "timestamp"] + pd.Timedelta(days=2)
    report = validate_frame(shifted, DAY, tmp_path)
    assert any(f["column"] == "timestamp" for f in report.critical_failures)


def test_warning_does_not_fail_the_partition(tmp_path, good_frame):
    no_failures = good_frame.copy()
    for column in ("machine_failure", "twf", "hdf", "pwf", "osf", "rnf"):
        no_failures[column] = 0
    report = validate_frame(no_failures, DAY, tmp_path)
    assert report.success
    assert [w["column"] for w in report.warnings] == ["machine_failure"]


def test_validate_partition_raises_on_critical_failure(tmp_path):
    root = tmp_path / "lake"
    ingest_day(DAY, str(root), generator=GeneratorConfig(machines=2, minutes=60))
    assert validate_partition(str(root), DAY, tmp_path / "v").success
    frame = lake.read_partition(root, DAY)
    frame.loc[0, "product_type"] = "X"
    lake.write_partition(frame, root, DAY, source="test")
    with pytest.raises(ValidationFailed, match="1 critical expectation"):
        validate_partition(str(root), DAY, tmp_path / "v")
