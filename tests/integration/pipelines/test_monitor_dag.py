"""The monitoring DAG under Airflow (``dag.test()`` on a SQLite metadata DB) with the session's
real MLflow: served traffic like the champion's training days requests nothing; traffic from a
miscalibrated sensor is flagged on that feature, written up in the reports, and emits the drift
asset event that schedules the retraining DAG.

The served traffic is written by the capture writer the endpoint uses, straight into this
test's lake (the endpoint's own capture is tested in tests/integration/serving)."""

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipelines.catalog import get_use_case, learner_of
from pipelines.monitoring.capture import CaptureConfig, CaptureWriter
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig, generate_day
from pipelines.usecases.predictive_maintenance.ingest import ingest_day

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
USE_CASE = get_use_case("predictive_maintenance")
LEARNER = learner_of(USE_CASE)
TRAINING_DAYS = [dt.date(2026, 11, 2), dt.date(2026, 11, 3)]
FLEET = GeneratorConfig(machines=50, minutes=120)

ASSET_EVENTS = """
import json, sys
from sqlalchemy import select
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
with create_session() as session:
    rows = session.execute(
        select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        .where(AssetModel.uri == sys.argv[1])
    ).all()
print("EVENTS " + json.dumps([r[0] for r in rows]))
"""


@pytest.fixture(scope="module")
def champion(local_stack, tmp_path_factory) -> tuple[str, str]:
    """A model whose champion was trained on ``TRAINING_DAYS``: (model name, the lake)."""
    lake = str(tmp_path_factory.mktemp("monitor") / "lake")
    for day in TRAINING_DAYS:
        ingest_day(day, lake, generator=FLEET)
    name = f"pm_monitor_{uuid.uuid4().hex[:8]}"
    client = MlflowClient(local_stack.tracking_uri)
    client.create_registered_model(name)
    experiment = client.create_experiment(name)
    run = client.create_run(experiment)
    tags = {"train_dates": ",".join(d.isoformat() for d in TRAINING_DAYS)}
    source = f"{run.info.artifact_uri}/model"
    version = client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags)
    client.set_registered_model_alias(name, "champion", version.version)
    return name, lake


def _serve(lake: str, day: dt.date, **drift) -> None:
    """Traffic the endpoint answered: a sample of the fleet's records of ``day``."""
    frame = generate_day(day, GeneratorConfig(machines=50, minutes=120, **drift))
    records = frame.sample(600, random_state=1)[list(LEARNER.inputs)].to_dict("records")
    answers = [{LEARNER.score_field: 0.1, LEARNER.decision_field: False}] * len(records)
    config = CaptureConfig(root=lake, use_case=USE_CASE.name)
    writer = CaptureWriter(config, LEARNER.capture_fields, score_field=LEARNER.score_field)
    writer.offer(records, answers, {"request_id": uuid.uuid4().hex, "model_version": "1"})
    writer.close()


def _monitor(airflow_home, env: dict, when: dt.datetime) -> dict:
    result, stdout, _ = airflow_home.run_dag(
        ROOT / "dags" / "use_cases.py",
        USE_CASE.monitor_dag_id,
        when.isoformat(),
        env=env,
    )
    assert result["state"] == "success", f"{result}\n{stdout[-4000:]}"
    return result


def _drift_events(airflow_home) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", ASSET_EVENTS, USE_CASE.drift_asset_uri],
        env=airflow_home.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("EVENTS ")][-1]
    return json.loads(line.removeprefix("EVENTS "))


def test_drifted_traffic_requests_a_retraining_and_normal_traffic_does_not(
    champion, airflow_home, local_stack, tmp_path
):
    model, training_lake = champion
    # Minutes ahead: the run's window ends at its time, after the traffic captured now.
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=5)
    reports = Path(local_stack.reports_dir) / USE_CASE.monitor_dag_id
    before = len(_drift_events(airflow_home))

    # Like the training days: checked, written up, nothing requested.
    normal = str(tmp_path / "normal")
    subprocess.run(["cp", "-r", training_lake, normal], check=True)
    _serve(normal, dt.date(2026, 11, 9))
    env = {"CONVEYOR_MODEL_NAME": model, "CONVEYOR_LAKE_ROOT": normal}
    result = _monitor(airflow_home, env, when)
    assert result["tasks"] == {
        "check": "success",
        "drifted": "success",
        "request_retraining": "skipped",
    }
    page = (reports / result["run_id"].replace(":", "_") / "index.html").read_text()
    assert "no drift in 6 features over 600 served rows" in page
    assert len(_drift_events(airflow_home)) == before

    # A sensor reading 4 K off: flagged on that feature alone, and a retraining requested.
    drifted = str(tmp_path / "drifted")
    subprocess.run(["cp", "-r", training_lake, drifted], check=True)
    _serve(drifted, dt.date(2026, 11, 9), sensor_offset_k=4.0)
    env = {"CONVEYOR_MODEL_NAME": model, "CONVEYOR_LAKE_ROOT": drifted}
    result = _monitor(airflow_home, env, when + dt.timedelta(minutes=1))
    assert set(result["tasks"].values()) == {"success"}, result
    page = (reports / result["run_id"].replace(":", "_") / "index.html").read_text()
    assert "drift in air_temperature_k: retraining requested" in page
    check = json.loads((reports / result["run_id"].replace(":", "_") / "check.json").read_text())
    assert check["drifted"] == ["air_temperature_k"]
    assert check["suite"]["success"] and check["suite"]["evaluated"] > 0
    events = _drift_events(airflow_home)
    assert len(events) == before + 1
    assert events[-1]["drifted"] == ["air_temperature_k"]
    index = (Path(local_stack.reports_dir) / "index.html").read_text()
    assert USE_CASE.monitor_dag_id in index  # the page is listed with the run reports
