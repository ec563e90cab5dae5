"""Airflow on the CeleryExecutor, for real: the machine's Redis as broker, PostgreSQL for the
metadata and the task results, two ``airflow celery worker`` processes next to the
api-server, scheduler, dag-processor and triggerer. The predictive-maintenance pipeline runs
on them; the worker that holds the training task is SIGKILLed with its task processes while
the Ray job runs, and the task's retry, on the other worker, reattaches to the same Ray job.

Training waits for its Ray job in the worker slot here (``[conveyor] ray_jobs_deferrable``
off), so that a worker holds it while it runs: deferred, it would be in the triggerer.
"""

import datetime as dt
import json
import os
import uuid

import pytest

from conveyor.processes import wait_until
from pipelines.ray_jobs_client import submission_id_for
from tests.airflow_server import airflow_server
from tests.services import redis_url

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAG_ID = "predictive_maintenance"
HEARTBEAT_TIMEOUT_S = 30
"""How soon the scheduler gives up on a task whose worker died (Airflow's default is 300 s)."""


@pytest.fixture(scope="module")
def celery_airflow(local_stack, tmp_path_factory):
    broker = redis_url()
    extra = {
        "AIRFLOW__CONVEYOR__RAY_JOBS_DEFERRABLE": "False",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
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


def test_the_pipeline_runs_on_celery_and_a_lost_worker_costs_no_second_ray_job(celery_airflow):
    server = celery_airflow
    api, jobs = server.api(), server.ray_jobs()
    wait_until(lambda: api.dag(DAG_ID)["is_paused"] is False, "DAG parsed and unpaused", 180)
    run_id = f"celery-{uuid.uuid4().hex[:8]}"
    conf = {"days": 1, "machines": 10, "epochs": 3, "num_workers": 1, "min_f1": 0.0}
    api.trigger(DAG_ID, dt.datetime.now(dt.UTC).isoformat(), conf, run_id=run_id)

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
    assert jobs.job_status(train_job) == "RUNNING", "the kill landed after training ended"

    wait_until(
        lambda: api.run(DAG_ID, run_id)["state"] in ("success", "failed"), "run finished", 900
    )
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
