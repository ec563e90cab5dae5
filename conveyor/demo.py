"""``make demo``: the whole pipeline on the embedded stack, driven through the REST API."""

from __future__ import annotations

import datetime as dt
import json
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
"""The use case ``make demo`` runs unless told another (``conveyor demo --use-case``)."""
TASKS = ("ingest", "validate", "train", "register", "promote", "deploy", "smoke_test", "report")


def _say(message: str) -> None:
    print(message, flush=True)


def _wait_for_dag(api: AirflowAPI, dag_id: str, timeout: float = 180.0) -> None:
    """The dag-processor parses dags/ asynchronously: wait until the DAG is known."""

    def known() -> bool:
        try:
            return bool(api.dag(dag_id))
        except httpx.HTTPStatusError:
            return False

    wait_until(known, f"DAG {dag_id} to be parsed", timeout)


def _shown(record: dict, limit: int = 120) -> dict:
    """A request record for the terminal: long values (an image's base64) cut short."""
    return {
        k: (f"{v[:limit]}... ({len(v)} characters)" if isinstance(v, str) and len(v) > limit else v)
        for k, v in record.items()
    }


def _say_report(api: AirflowAPI, settings: ConveyorSettings, dag_id: str, run_id: str) -> None:
    """The run report's first line (its outcome) and its URL."""
    try:
        url = api.xcom(dag_id, run_id, "report", "report_url")
    except httpx.HTTPError:
        _say("no run report (the report task did not run)")
        return
    _say(f"run report: {settings.airflow_base_url}{url}")
    page = settings.reports_dir / url.removeprefix("/conveyor/reports/")
    summary = page.parent / "summary.json"
    if summary.is_file():
        _say(f"outcome: {json.loads(summary.read_text())['verdict']}")


def run_demo(
    settings: ConveyorSettings,
    *,
    params: dict,
    timeout: float,
    use_case: str = USE_CASE,
) -> int:
    """Start the stack, trigger ``use_case``'s run DAG with ``params`` (its trigger form's
    fields; the rest keep the form's defaults) through the REST API, follow it, predict."""
    spec = get_use_case(use_case)
    dag_id = spec.run_dag_id
    try:
        Stack(settings).up()
    except StackError as exc:
        print(f"conveyor demo: {exc}", file=sys.stderr)
        return 2
    password = airflow_password(settings)
    api = AirflowAPI(settings.airflow_base_url, AIRFLOW_USER, password)
    _wait_for_dag(api, dag_id)
    api.unpause(dag_id)
    # A fresh logical date per demo, so `make demo` twice never collides with an earlier run.
    logical = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run = api.trigger(dag_id, logical.isoformat(), params)
    run_id = run["dag_run_id"]
    _say(f"triggered {dag_id} run_id={run_id} through {settings.airflow_base_url}/api/v2")

    seen: dict[str, str] = {}
    started = time.monotonic()
    deadline = started + timeout
    state = run["state"]
    while time.monotonic() < deadline:
        for ti in api.task_instances(dag_id, run_id):
            if ti["state"] and seen.get(ti["task_id"]) != ti["state"]:
                seen[ti["task_id"]] = ti["state"]
                elapsed = time.monotonic() - started
                _say(f"  [{elapsed:5.0f}s] {ti['task_id']:<12} {ti['state']}")
        state = api.run(dag_id, run_id)["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)

    ui = f"{settings.airflow_base_url}/dags/{dag_id}/runs/{run_id}"
    _say(f"\nAirflow UI: {settings.airflow_base_url}  user={AIRFLOW_USER} password={password}")
    _say_report(api, settings, dag_id, run_id)
    if state != "success":
        _say(f"run {run_id} ended {state}; task logs: {ui}")
        return 1
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(dag_id, run_id)}
    if states.get("deploy") == "skipped":
        _say("no model passed the quality bar (the report says why): nothing deployed")
        return 1
    # The stack was started with the deployment's settings (every use case's names derive
    # from its own spec).
    endpoint = settings.for_use_case(spec).serve_endpoint
    sample = learner_of(spec).sample_records[:1]
    answer = predict(endpoint, sample, token=settings.serve_token.get_secret_value())
    _say(f"Ray Serve endpoint: {endpoint}/predict  (model version {answer['model_version']})")
    _say(f"sample request:  {_shown(sample[0])}")
    _say(f"sample response: {answer}")
    _say(f"Ray dashboard: {settings.ray_jobs_address}   MLflow: {settings.tracking_uri}")
    if find_ray_token():
        _say("the Ray dashboard asks for Ray's auth token: .venv/bin/ray get-auth-token")
    _say("stop everything with: make down")
    return 0
