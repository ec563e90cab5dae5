import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.data import lake
from pipelines.data.validation import (
    ValidationFailed,
    passed_dates,
    suite_path_for,
    validate_days,
    validate_frame,
    validate_partition,
)
from pipelines.usecases.predictive_maintenance import USE_CASE
from pipelines.usecases.predictive_maintenance.generator import (
    FaultConfig,
    GeneratorConfig,
    generate_day,
)
from pipelines.usecases.predictive_maintenance.ingest import ingest_day

DAY = dt.date(2026, 11, 3)
SMALL = GeneratorConfig(machines=6, minutes=240)
NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
SUITE = suite_path_for(USE_CASE)
TABLE = USE_CASE.table.name


@pytest.fixture(scope="module")
def good_frame():
    return generate_day(DAY, GeneratorConfig(machines=10, minutes=240))


def _failed(report, rule):
    return [f for f in report.critical_failures if f["rule"] == rule]


def test_good_partition_passes_and_result_and_data_docs_are_kept(tmp_path, good_frame):
    report = validate_frame(good_frame, DAY, tmp_path, SUITE, run_id="manual__1", now=NOW)
    assert report.success, report.critical_failures
    run_dir = tmp_path / "date=2026-11-03" / "manual__1"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["success"] is True
    html = (run_dir / "index.html").read_text()
    # The page renders each expectation: the key's uniqueness, with the key's columns.
    assert "Values for given compound columns must be unique together" in html
    assert "machine_id" in html and "timestamp" in html
    assert html.lstrip().lower().startswith("<!doctype html")
    assert report.docs_path == str(run_dir / "index.html")


def test_critical_failures_name_expectation_observed_and_expected(tmp_path, good_frame):
    bad = good_frame.copy()
    bad.loc[5, "torque_nm"] = 900.0
    report = validate_frame(bad, DAY, tmp_path, SUITE, now=NOW)
    assert not report.success
    [torque] = _failed(report, "validity")
    assert torque["column"] == "torque_nm"
    assert torque["observed"]["unexpected_count"] == 1
    assert torque["observed"]["sample"] == [900.0]
    assert torque["expected"]["max_value"] == 100


def test_nan_and_inf(tmp_path, good_frame):
    bad = good_frame.copy()
    bad.loc[bad.index[: len(bad) // 20], "air_temperature_k"] = np.nan  # 5 % missing
    bad.loc[7, "torque_nm"] = np.inf
    report = validate_frame(bad, DAY, tmp_path, SUITE, now=NOW)
    assert [f["column"] for f in _failed(report, "completeness")] == ["air_temperature_k"]
    assert [f["column"] for f in _failed(report, "validity")] == ["torque_nm"]


def test_conflicting_duplicates_fail_uniqueness(tmp_path, good_frame):
    dupes = good_frame.iloc[:3].assign(air_temperature_k=lambda f: f["air_temperature_k"] + 1)
    report = validate_frame(pd.concat([good_frame, dupes]), DAY, tmp_path, SUITE, now=NOW)
    [unique] = _failed(report, "uniqueness")
    assert unique["observed"]["unexpected_count"] == 6


def test_rows_outside_the_day_or_in_the_future_fail_freshness(tmp_path, good_frame):
    shifted = good_frame.copy()
    shifted.loc[0, "timestamp"] = shifted.loc[0, "timestamp"] + pd.Timedelta(days=2)
    assert _failed(validate_frame(shifted, DAY, tmp_path, SUITE, now=NOW), "freshness")
    # Validating the day while it is still running: rows after "now" are in the future.
    noon = dt.datetime.combine(DAY, dt.time(2), tzinfo=dt.UTC)
    [future] = _failed(validate_frame(good_frame, DAY, tmp_path, SUITE, now=noon), "freshness")
    assert future["observed"]["unexpected_count"] > 0


def test_warning_does_not_fail_the_partition(tmp_path, good_frame):
    no_failures = good_frame.copy()
    for column in ("machine_failure", "twf", "hdf", "pwf", "osf", "rnf"):
        no_failures[column] = 0
    report = validate_frame(no_failures, DAY, tmp_path, SUITE, now=NOW)
    assert report.success
    assert [(w["rule"], w["column"]) for w in report.warnings] == [
        ("label_sanity", "machine_failure")
    ]


def test_label_rate_far_outside_the_band_is_critical(tmp_path, good_frame):
    all_failing = good_frame.assign(machine_failure=1)
    assert _failed(validate_frame(all_failing, DAY, tmp_path, SUITE, now=NOW), "label_sanity")


def test_schema_drift_fails_the_schema_rule(tmp_path, good_frame):
    drifted = good_frame.assign(firmware="x")
    assert _failed(validate_frame(drifted, DAY, tmp_path, SUITE, now=NOW), "schema")


def _history(root, results, days):
    for day in days:
        ingest_day(day, root, generator=SMALL)
        validate_partition(root, day, results, SUITE, table=TABLE, run_id="r", now=NOW)


def test_volume_and_drift_use_the_validated_history(tmp_path):
    root, results = str(tmp_path / "lake"), tmp_path / "v"
    first = validate_partition(*_first_day(root, results), results, SUITE, table=TABLE, now=NOW)
    assert "no validated history yet" in first.notes[0]
    _history(root, results, [dt.date(2026, 11, d) for d in (2, 3)])

    # Drift: torque shifted by 10 Nm is a warning (the partition still passes).
    day = dt.date(2026, 11, 4)
    frame = generate_day(day, SMALL).assign(torque_nm=lambda f: f["torque_nm"] + 10)
    lake.write_partition(frame, root, day, table_name="telemetry")
    report = validate_partition(root, day, results, SUITE, table=TABLE, run_id="r", now=NOW)
    assert report.success
    assert "2026-11-01, 2026-11-02, 2026-11-03" in report.notes[0]
    assert ("drift", "torque_nm") in {(w["rule"], w["column"]) for w in report.warnings}

    # Volume: a third of the usual rows is critical, and the day is quarantined.
    day = dt.date(2026, 11, 5)
    lake.write_partition(
        generate_day(day, GeneratorConfig(machines=2, minutes=240)),
        root,
        day,
        table_name="telemetry",
    )
    with pytest.raises(ValidationFailed) as failed:
        validate_partition(root, day, results, SUITE, table=TABLE, run_id="r", now=NOW)
    assert [f["rule"] for f in failed.value.report.critical_failures] == ["volume"]
    assert day not in passed_dates(results)


def test_the_result_names_the_validated_data_file_by_its_sha256(tmp_path):
    root, results = str(tmp_path / "lake"), tmp_path / "v"
    root, day = _first_day(root, results)
    report = validate_partition(root, day, results, SUITE, table=TABLE, run_id="r", now=NOW)
    sha = lake.read_manifest(root, day, table="telemetry").sha256
    assert report.data_sha256 == sha
    markers = json.loads(Path(report.result_path).read_text())["meta"]["batch_markers"]
    assert markers["lake_sha256"] == sha, markers
    assert "pandas_data_fingerprint" not in markers  # GX's own row hash is skipped
    latest = json.loads((results / f"date={day}" / "latest.json").read_text())
    assert latest["data_sha256"] == sha


def _first_day(root, results):
    day = dt.date(2026, 11, 1)
    ingest_day(day, root, generator=SMALL)
    return root, day


def test_critical_failure_quarantines_the_partition_with_its_result(tmp_path):
    root, results = str(tmp_path / "lake"), tmp_path / "v"
    faults = FaultConfig(out_of_range_ratio=0.01)
    manifest = ingest_day(DAY, root, generator=SMALL, faults=faults, run_id="r9").manifest
    with pytest.raises(ValidationFailed, match="1 critical expectation.*quarantined at") as exc:
        validate_partition(root, DAY, results, SUITE, table=TABLE, run_id="r9", now=NOW)
    assert DAY not in lake.committed_dates(root, table="telemetry")
    where = Path(exc.value.report.quarantined_at)
    kept = {p.name for p in where.iterdir()}
    assert {manifest["data_file"], lake.MANIFEST_FILE, "validation_result.json"} <= kept
    assert json.loads((where / "validation_result.json").read_text())["success"] is False
    assert "date=2026-11-03" in str(where) and "r9" in where.name


def test_validate_days_checks_every_day_and_writes_the_run_page(tmp_path):
    root, results = str(tmp_path / "lake"), tmp_path / "v"
    good, bad = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    ingest_day(good, root, generator=SMALL)
    ingest_day(bad, root, generator=SMALL, faults=FaultConfig(duplicate_ratio=0.01))
    reports = validate_days(
        root, [bad, good], results, suite_path=SUITE, table=TABLE, run_id="scheduled__x"
    )
    assert [r.success for r in reports] == [False, True]
    assert lake.committed_dates(root, table="telemetry") == [good]
    page = (results / "runs" / "scheduled__x.html").read_text()
    assert "date=2026-11-02/scheduled__x/index.html" in page and "FAILED" in page
