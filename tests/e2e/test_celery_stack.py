"""Airflow on the CeleryExecutor, for real: the machine's Redis as broker, PostgreSQL for the
metadata and the task results, two ``airflow celery worker`` processes next to the
api-server, scheduler, dag-processor and triggerer. The predictive-maintenance pipeline runs
on them; the worker that holds the training task is SIGKILLed with its task processes while
the Ray job runs, and the task's retry, on the other worker, reattaches to the same Ray job.
Then the monitoring loop runs on the same stack: the triggerer's watcher sees an hour of
drifted traffic, the monitoring DAG flags it, and the retraining DAG runs from its event.

Training waits for its Ray job in the worker slot here (``[conveyor] ray_jobs_deferrable``
off), so that a worker holds it while it runs: deferred, it would be in the triggerer.
"""

import datetime as dt
import json
import os
import time
import uuid

import httpx
import pytest

from conveyor.processes import wait_until
from pipelines.catalog import get_use_case, learner_of
from pipelines.monitoring.capture import CaptureConfig, CaptureWriter
from pipelines.ray_jobs_client import submission_id_for
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig, generate_day
from tests.airflow_server import airflow_server
from tests.services import redis_url

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAG_ID = "predictive_maintenance"
USE_CASE = get_use_case(DAG_ID)
LEARNER = learner_of(USE_CASE)
SMALL_RUN = {"days": 1, "machines": 10, "epochs": 3, "num_workers": 1, "min_f1": 0.0}
HEARTBEAT_TIMEOUT_S = 30
"""How soon the scheduler gives up on a task whose worker died (Airflow's default is 300 s)."""


@pytest.fixture(scope="module")
def celery_airflow(local_stack, tmp_path_factory):
    broker = redis_url()
    extra = {
        "AIRFLOW__CONVEYOR__RAY_JOBS_DEFERRABLE": "False",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        # The watcher lists the captured hours every 2 s (a minute by default).
        "CONVEYOR_CAPTURE_POLL_S": "2",
        "CONVEYOR_CAPTURE_SETTLE_S": "1",
    }
    with airflow_server(
        local_stack,
        tmp_path_factory.mktemp("celery-stack") / "home",
        "pm-celery",
        extra_env=extra,
        celery_workers=2,
        airflow_executor="CeleryExecutor",
        celery_broker_url=broker,
        celery_queue=f"conveyor-test-{uuid.uuid4().hex[:8]}",  # the broker may be shared
    ) as server:
        yield server


@pytest.fixture(scope="module")
def lost_worker_run(celery_airflow) -> dict:
    """The pipeline, triggered through the REST API; the Celery worker holding its training
    task is SIGKILLed with its task processes while the Ray job runs, then the run is waited
    for: {"run_id", "train_job", "job_status_after_kill"}. Its model is also the champion
    the monitoring test's endpoint serves, so the module runs the pipeline once, whatever
    the order of its tests."""
    server = celery_airflow
    api, jobs = server.api(), server.ray_jobs()
    wait_until(lambda: api.dag(DAG_ID)["is_paused"] is False, "DAG parsed and unpaused", 180)
    run_id = f"celery-{uuid.uuid4().hex[:8]}"
    api.trigger(DAG_ID, dt.datetime.now(dt.UTC).isoformat(), SMALL_RUN, run_id=run_id)

    def train() -> dict:
        return next(t for t in api.task_instances(DAG_ID, run_id) if t["task_id"] == "train")

    train_job = submission_id_for(DAG_ID, run_id, "train")
    wait_until(
        lambda: jobs.job_status(train_job) == "RUNNING" and train()["state"] == "running",
        "training running on Ray, its task on a worker",
        300,
    )
    # The worker whose session holds the task's process: SIGKILL it and all it runs.
    task_pid = train()["pid"]
    (holder,) = [w for w in ("w1", "w2") if server.records[w].pid == os.getsid(task_pid)]
    server.kill(holder)
    after_kill = jobs.job_status(train_job)
    wait_until(
        lambda: api.run(DAG_ID, run_id)["state"] in ("success", "failed"), "run finished", 900
    )
    api.close()
    return {"run_id": run_id, "train_job": train_job, "job_status_after_kill": after_kill}


def test_the_pipeline_runs_on_celery_and_a_lost_worker_costs_no_second_ray_job(
    celery_airflow, lost_worker_run
):
    server = celery_airflow
    api, jobs = server.api(), server.ray_jobs()
    run_id, train_job = lost_worker_run["run_id"], lost_worker_run["train_job"]
    conf = SMALL_RUN
    assert lost_worker_run["job_status_after_kill"] == "RUNNING", "the kill landed too late"
    states = {t["task_id"]: t for t in api.task_instances(DAG_ID, run_id)}
    assert api.run(DAG_ID, run_id)["state"] == "success", {t: s["state"] for t, s in states.items()}
    assert {s["state"] for s in states.values()} == {"success"}
    # Every task went through the Celery queue; training ran twice as a task, once on Ray.
    assert {s["queue"] for s in states.values()} == {server.settings.celery_queue}
    assert states["train"]["try_number"] == 2
    attempts = [j.submission_id for j in jobs.client.list_jobs()]
    assert [j for j in attempts if (j or "").startswith(train_job)] == [train_job]
    # And that job was never restarted: every epoch ran once, in the one attempt, from epoch 0
    # (epochs run in total = epochs, where a resubmitted job would have run them again).
    result = json.loads((server.settings.runs_dir / "results" / f"{train_job}.json").read_text())
    history = result["history"]
    assert [h["epoch"] for h in history] == list(range(conf["epochs"]))
    assert {h["resumed_from_epoch"] for h in history} == {0}
    api.close()


def test_drifted_traffic_is_announced_flagged_and_retrained_through_the_gate(
    celery_airflow, lost_worker_run
):
    """The monitoring loop on the scheduler and the triggerer. The endpoint answers a fleet
    whose air-temperature sensor reads 4 K high; those answers are captured as an hour of
    traffic that has ended (``CaptureWriter`` clocked an hour back: the watcher announces
    completed hours only). The triggerer's ``CapturedHoursTrigger`` announces the hour, the
    asset event starts the monitoring DAG, which flags that sensor and emits the drift asset;
    the retraining DAG runs from that event on the latest validated days and through the gate.
    Those days (a small fleet's) do not train to the use case's bar (holdout F1 0.8), so the
    retrained version stays challenger and the endpoint goes on serving the version it served."""
    server = celery_airflow
    settings, api = server.settings, server.api()
    before = _served_version(settings.serve_endpoint)
    assert before, "the module's pipeline run serves no champion"
    monitor, retrain = USE_CASE.monitor_dag_id, USE_CASE.retrain_dag_id
    seen = {r["dag_run_id"] for r in api.runs(monitor)}

    _serve_drifted_traffic(settings.serve_endpoint, settings.lake, time.time() - 3600)

    def announced() -> list[dict]:
        runs = [r for r in api.runs(monitor) if r["dag_run_id"] not in seen]
        return [r for r in runs if r["run_type"] == "asset_triggered"]

    wait_until(
        lambda: any(r["state"] in ("success", "failed") for r in announced()),
        "a monitoring run started by the watcher's asset event",
        300,
    )
    run = next(r for r in announced() if r["state"] in ("success", "failed"))
    tasks = api.task_states(monitor, run["dag_run_id"])
    assert run["state"] == "success" and tasks["request_retraining"] == "success", tasks
    found = api.xcom(monitor, run["dag_run_id"], "check")
    assert "air_temperature_k" in found["drifted"], found["verdict"]
    assert found["model_version"] == before and found["rows"] >= 600

    def retrained() -> list[dict]:
        runs = [r for r in api.runs(retrain) if r["run_type"] == "asset_triggered"]
        return sorted(runs, key=lambda r: r["queued_at"])

    wait_until(
        lambda: retrained() and retrained()[0]["state"] in ("success", "failed"),
        "the retraining run started by the drift asset event",
        600,
    )
    again = retrained()[0]
    tasks = api.task_states(retrain, again["dag_run_id"])
    assert again["state"] == "success", tasks
    assert api.xcom(retrain, again["dag_run_id"], "partitions"), "no validated days to train on"
    decision = api.xcom(retrain, again["dag_run_id"], "promote", key="decision")
    assert decision["champion_before"] == before
    assert decision["challenger"] != before, "the retraining run trained nothing new"
    assert not decision["promoted"] and decision["champion_after"] == before, decision["reason"]
    assert "stays challenger" in decision["reason"]
    assert _served_version(settings.serve_endpoint) == before  # the gate said no: unchanged
    api.close()


def _served_version(endpoint: str) -> str | None:
    """The version the endpoint's stable route answers with; None when nothing is served (no
    Serve proxy yet, or no application on the route)."""
    try:
        answer = httpx.get(f"{endpoint}/metadata", timeout=30)
    except httpx.ConnectError:
        return None
    if answer.status_code != 200:
        return None
    stable = answer.json()["stable"]
    return stable["model_version"] if stable else None


def _serve_drifted_traffic(endpoint: str, lake: str, at: float) -> None:
    """600 records of a fleet with a miscalibrated sensor, answered by the endpoint, captured
    as the endpoint captures them, stamped ``at``."""
    frame = generate_day(
        dt.date(2026, 11, 9), GeneratorConfig(machines=10, minutes=120, sensor_offset_k=4.0)
    )
    sample = frame.sample(600, random_state=1)[list(LEARNER.inputs)]
    records = json.loads(sample.to_json(orient="records"))
    writer = CaptureWriter(
        CaptureConfig(root=lake, use_case=USE_CASE.name),
        LEARNER.capture_fields,
        score_field=LEARNER.score_field,
        label_field=LEARNER.decision_field,
        clock=lambda: at,
    )
    try:
        for start in range(0, len(records), 200):
            batch = records[start : start + 200]
            answer = httpx.post(f"{endpoint}/predict", json={"records": batch}, timeout=60)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            meta = {
                "request_id": uuid.uuid4().hex,
                "model_version": body["model_version"],
                "served_by": body["served_by"],
            }
            writer.offer(batch, body["predictions"], meta)
    finally:
        writer.close()
    assert writer.stats["written"] == len(records), dict(writer.stats)
