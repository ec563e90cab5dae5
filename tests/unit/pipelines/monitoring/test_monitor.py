"""One monitoring pass, without Airflow: captured traffic in a temporary lake against the
training partitions beside it. A dark camera fails the image suite on served traffic and
drifts on brightness; too little traffic gives no verdict; the drift page is listed with the
run reports."""

import datetime as dt
import json
import uuid

import pytest

from pipelines.catalog import get_use_case, learner_of
from pipelines.data.ingest import ingest_day
from pipelines.monitoring.capture import CaptureConfig, CaptureWriter
from pipelines.monitoring.monitor import check_served, serving_expectations, write_drift_report
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.generator import generate_day as telemetry_day
from pipelines.usecases.visual_quality_control import generator as images

TRAINING_DAY = dt.date(2026, 11, 2)
NOW = dt.datetime.now(dt.UTC)
# Wide enough for traffic captured whenever the test runs in a long suite (each test's lake
# is its own, so nothing else falls in it).
WINDOW = (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1))


def _capture(lake: str, use_case, records: list[dict]) -> None:
    learner = learner_of(use_case)
    writer = CaptureWriter(
        CaptureConfig(root=lake, use_case=use_case.name),
        learner.capture_fields,
        score_field=learner.score_field,
    )
    answers = [{learner.score_field: 0.1}] * len(records)
    writer.offer(records, answers, {"request_id": uuid.uuid4().hex, "model_version": "1"})
    writer.close()


@pytest.fixture(scope="module")
def image_lake(tmp_path_factory):
    """A training day of images in a lake, and the image use case."""
    use_case = get_use_case("visual_quality_control")
    lake = str(tmp_path_factory.mktemp("images") / "lake")
    ingest_day(
        TRAINING_DAY,
        lake,
        table=use_case.table,
        generate=images.GeneratedDays(_config(1.0)),
    )
    return lake, use_case


def _config(lighting: float) -> images.GeneratorConfig:
    return images.GeneratorConfig(images=240, lighting=lighting)


def _served_images(use_case, lighting: float) -> list[dict]:
    learner = learner_of(use_case)
    frame = images.generate_day(dt.date(2026, 11, 9), _config(lighting))
    return [learner.parse_request("image/png", data)[0] for data in frame["image"]]


def _dark_camera(image_lake, tmp_path) -> tuple[str, object]:
    """A copy of the training lake with a dark camera's served images captured in it: each
    test its own, whatever order they run in."""
    lake, use_case = image_lake
    own = str(tmp_path / "lake")
    _copy_lake(lake, own)
    _capture(own, use_case, _served_images(use_case, 0.2))
    return own, use_case


def test_a_dark_camera_fails_the_suite_on_served_images_and_drifts_on_brightness(
    image_lake, tmp_path
):
    lake, use_case = _dark_camera(image_lake, tmp_path)
    found = check_served(
        lake, use_case, learner_of(use_case), *WINDOW, [TRAINING_DAY.isoformat()], "1"
    )
    assert found.rows == 240
    assert "brightness" in found.drifted and found.retrain
    assert not found.suite["success"]
    assert {f["column"] for f in found.suite["critical_failures"]} >= {"brightness"}
    assert "served traffic fails the suite on" in found.verdict


def test_too_little_traffic_gives_no_verdict(tmp_path):
    use_case = get_use_case("predictive_maintenance")
    learner = learner_of(use_case)
    frame = telemetry_day(TRAINING_DAY, GeneratorConfig(machines=2, minutes=20))
    _capture(str(tmp_path), use_case, frame[list(learner.inputs)].to_dict("records"))
    found = check_served(str(tmp_path), use_case, learner, *WINDOW, [TRAINING_DAY.isoformat()])
    assert found.rows == 40 and not found.retrain and found.drift is None
    assert found.verdict == "no verdict: 40 served rows in the window, fewer than 200"


def test_served_traffic_is_checked_by_its_column_rules_only():
    expectations = [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["a"]}},
        {"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": "a"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}},
    ]
    kept = serving_expectations(expectations, {"a", "b"})
    assert [e["type"] for e in kept] == ["expect_column_values_to_be_between"]


def test_the_drift_page_is_listed_with_the_run_reports(image_lake, tmp_path):
    lake, use_case = _dark_camera(image_lake, tmp_path)
    found = check_served(
        lake, use_case, learner_of(use_case), *WINDOW, [TRAINING_DAY.isoformat()], "1"
    )
    reports = tmp_path / "reports"
    page = write_drift_report(reports, "visual_quality_control_monitor", "run-1", found)
    assert found.verdict in page.read_text()
    summary = json.loads((page.parent / "summary.json").read_text())
    assert summary["served_version"] == "1" and summary["psi"]
    assert "visual_quality_control_monitor" in (reports / "index.html").read_text()


def test_answers_unlike_the_champion_s_holdout_scores_are_prediction_drift(tmp_path):
    """Inputs like the training day, answers not like the champion's holdout scores: drift
    in the prediction alone. Only the champion's own answers are compared (a canary's are
    another model's), and a window with answers like the reference has none."""
    import numpy as np

    use_case = get_use_case("predictive_maintenance")
    learner = learner_of(use_case)
    lake = str(tmp_path / "lake")
    fleet = GeneratorConfig(machines=20, minutes=120)
    from pipelines.usecases.predictive_maintenance.ingest import ingest_day as ingest_telemetry

    ingest_telemetry(TRAINING_DAY, lake, generator=fleet)
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 20, 3000).tolist()  # mostly healthy machines: low probabilities
    records = telemetry_day(TRAINING_DAY, fleet)[list(learner.inputs)]  # inputs as trained on
    records = records.sample(600, random_state=1).to_dict("records")

    def serve(root: str, champion_scores, canary_scores) -> None:
        writer = CaptureWriter(
            CaptureConfig(root=root, use_case=use_case.name),
            learner.capture_fields,
            score_field=learner.score_field,
        )
        for version, scores in (("3", champion_scores), ("4", canary_scores)):
            answers = [{learner.score_field: float(s)} for s in scores]
            meta = {"request_id": uuid.uuid4().hex, "model_version": version}
            writer.offer(records[: len(answers)], answers, meta)
        writer.close()

    alike = str(tmp_path / "alike")
    serve(alike, rng.beta(2, 20, 600), rng.beta(8, 2, 300))  # the canary's answers differ
    _copy_lake(lake, alike)
    found = check_served(
        alike, use_case, learner, *WINDOW, [TRAINING_DAY.isoformat()], "3", reference
    )
    prediction = [f for f in found.drift["features"] if f["feature"] == "prediction"]
    assert prediction and prediction[0]["current_rows"] == 600
    assert found.drifted == [] and "or the prediction" in found.verdict

    shifted = str(tmp_path / "shifted")
    serve(shifted, rng.beta(8, 2, 600), rng.beta(2, 20, 300))
    _copy_lake(lake, shifted)
    found = check_served(
        shifted, use_case, learner, *WINDOW, [TRAINING_DAY.isoformat()], "3", reference
    )
    assert found.drifted == ["prediction"] and found.retrain

    # A champion trained before reference scores were kept: prediction drift is left out.
    found = check_served(shifted, use_case, learner, *WINDOW, [TRAINING_DAY.isoformat()], "3")
    assert "prediction" not in {f["feature"] for f in found.drift["features"]}


def _copy_lake(source: str, target: str) -> None:
    import shutil

    shutil.copytree(source, target, dirs_exist_ok=True)
