"""``make demo``: the whole pipeline on the embedded stack, driven through the REST API."""

from __future__ import annotations

import datetime as dt
import sys
import time

import httpx

from conveyor.airflow_api import AirflowAPI
from conveyor.processes import StackError, wait_until
from conveyor.stack import AIRFLOW_USER, Stack, airflow_password
from pipelines.catalog import get_use_case, learner_of
from pipelines.ray_auth import find_ray_token
from pipelines.serving.client import predict
from pipelines.settings import ConveyorSettings

USE_CASE = "predictive_maintenance"
DAG_ID = USE_CASE  # its run DAG (UseCase.run_dag_id)
TASKS = ("ingest", "validate", "train", "register", "promote", "deploy", "smoke_test", "report")


def _say(message: str) -> None:
    print(message, flush=True)


def _wait_for_dag(api: AirflowAPI, timeout: float = 180.0) -> None:
    """The dag-processor parses dags/ asynchronously: wait until the DAG is known."""

    def known() -> bool:
        try:
            return bool(api.dag(DAG_ID))
        except httpx.HTTPStatusError:
            return False

    wait_until(known, f"DAG {DAG_ID} to be parsed", timeout)


def run_demo(
    settings: ConveyorSettings, *, days: int, machines: int, epochs: int, timeout: float
) -> int:
    try:
        Stack(settings).up()
    except StackError as exc:
        print(f"conveyor demo: {exc}", file=sys.stderr)
        return 2
    password = airflow_password(settings)
    api = AirflowAPI(settings.airflow_base_url, AIRFLOW_USER, password)
    _wait_for_dag(api)
    api.unpause(DAG_ID)
    # A fresh logical date per demo, so `make demo` twice never collides with an earlier run.
    logical = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run = api.trigger(
        DAG_ID, logical.isoformat(), {"days": days, "machines": machines, "epochs": epochs}
    )
    run_id = run["dag_run_id"]
    _say(f"triggered {DAG_ID} run_id={run_id} through {settings.airflow_base_url}/api/v2")

    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    state = run["state"]
    while time.monotonic() < deadline:
        for ti in api.task_instances(DAG_ID, run_id):
            if ti["state"] and seen.get(ti["task_id"]) != ti["state"]:
                seen[ti["task_id"]] = ti["state"]
                _say(f"  {ti['task_id']:<12} {ti['state']}")
        state = api.run(DAG_ID, run_id)["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)

    ui = f"{settings.airflow_base_url}/dags/{DAG_ID}/runs/{run_id}"
    _say(f"\nAirflow UI: {settings.airflow_base_url}  user={AIRFLOW_USER} password={password}")
    if state != "success":
        _say(f"run {run_id} ended {state}; task logs: {ui}")
        return 1
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(DAG_ID, run_id)}
    if states.get("deploy") == "skipped":
        _say("no model passed the quality bar yet (see the promote task's log): nothing deployed")
        return 1
    # The stack was started with the deployment's settings (every use case's names derive
    # from its own spec); the demo's endpoint is predictive maintenance's.
    endpoint = settings.for_use_case(get_use_case(USE_CASE)).serve_endpoint
    sample = learner_of(USE_CASE).sample_records[:1]
    answer = predict(endpoint, sample, token=settings.serve_token.get_secret_value())
    _say(f"Ray Serve endpoint: {endpoint}/predict  (model version {answer['model_version']})")
    _say(f"sample request:  {sample[0]}")
    _say(f"sample response: {answer}")
    _say(f"Ray dashboard: {settings.ray_jobs_address}   MLflow: {settings.tracking_uri}")
    if find_ray_token():
        _say("the Ray dashboard asks for Ray's auth token: .venv/bin/ray get-auth-token")
    _say("stop everything with: make down")
    return 0
