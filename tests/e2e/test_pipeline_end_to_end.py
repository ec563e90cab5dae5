"""The predictive_maintenance DAG end to end on real Airflow, Ray, GX, MLflow and Ray Serve.

Nothing is mocked: Airflow runs the DAG with ``dag.test()`` against a SQLite metadata DB, the
train task submits a Ray job to the local head, the model is registered in MLflow and served by
Ray Serve, and this test then calls the endpoint itself.
"""

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import httpx
import pytest

from pipelines.data import lake
from pipelines.ray_auth import find_ray_token
from pipelines.serving.admin import ServeAdmin
from pipelines.serving.target import target_from_settings
from pipelines.usecases.predictive_maintenance.learner import SAMPLE_RECORDS

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own(local_stack, tmp_path):
    """This test's own model, Serve application, route and lake on the session's stack, so
    that what other tests registered, served or ingested before it (in any order) changes
    nothing here: (settings, the environment that names them for a DAG run). Its Serve
    applications are removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = {
        "model_name": f"pm_e2e_{tag}",
        "serve_app_name": f"pm-e2e-{tag}",
        "serve_route_prefix": f"/pm-e2e-{tag}",
        "lake_root": str(tmp_path / "lake"),
    }
    settings = local_stack.model_copy(update=names)
    yield settings, {f"CONVEYOR_{k.upper()}": v for k, v in names.items()}
    admin = ServeAdmin(settings.ray_jobs_address, ray_token=find_ray_token())
    target = target_from_settings(settings)
    keep = [c for n, c in admin.configs().items() if not target.owns(n)]
    admin.put(keep, target.http_host, target.http_port)


def test_dag_runs_end_to_end_and_the_endpoint_serves_predictions(own, airflow_home, tmp_path):
    settings, names = own
    # Small data and few epochs: the quality bar is loosened accordingly. OpenLineage on, with
    # the file transport (its events are checked below); the later runs leave it off.
    conf = {"days": 2, "machines": 8, "epochs": 2, "num_workers": 2, "min_f1": 0.3}
    events = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    result, stdout, _ = airflow_home.run_dag(
        ROOT / "dags" / "use_cases.py",
        "predictive_maintenance",
        "2026-11-03T00:00:00+00:00",
        conf,
        env={**names, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)},
    )
    assert result["state"] == "success", f"{result}\n{stdout[-6000:]}"
    assert set(result["tasks"].values()) == {"success"}, result
    _assert_lineage_chain(events, settings)

    # Two partitions in the lake, one model version in the registry.
    lake_dates = sorted(p.name for p in (Path(settings.lake) / "telemetry").iterdir())
    assert lake_dates == ["date=2026-11-01", "date=2026-11-02"]
    from mlflow.tracking import MlflowClient

    versions = MlflowClient(settings.tracking_uri).search_model_versions(
        f"name = '{settings.model_name}'"
    )
    assert [v.version for v in versions] == ["1"]
    registered = MlflowClient(settings.tracking_uri).get_model_version_by_alias(
        settings.model_name, "champion"
    )
    assert registered.version == "1"
    assert registered.tags["dag_run_id"] == result["run_id"]
    assert registered.tags["train_dates"] == "2026-11-01,2026-11-02"
    assert {"manifest.2026-11-01", "manifest.2026-11-02", "git_commit"} <= set(registered.tags)
    # Its holdout scores as the endpoint answers them: the monitor's prediction-drift reference.
    from pipelines.ml.registry import version_reference_scores

    scores = version_reference_scores(settings.tracking_uri, settings.model_name, "1")
    assert scores and all(0.0 <= s <= 1.0 for s in scores)

    # The run's report page: what is served first, then data, validation, training, metrics,
    # and where to look next.
    report = _report_markdown(settings, result["run_id"])
    assert report.splitlines()[2].startswith("**serving version 1: v1 is the new champion")
    assert "| 2026-11-01 |" in report and "passed (" in report
    assert "| f1 |" in report and f"registered {settings.model_name} v1" in report
    assert "- serving: version 1" in report
    for link in ("Data Docs (validation)", "Ray job (training)", "MLflow run", "Endpoint"):
        assert f"- {link}" in report, link

    # The served endpoint answers a prediction itself, from this process.
    endpoint = f"{settings.serve_base_url}{settings.serve_route_prefix}"
    response = httpx.post(f"{endpoint}/predict", json={"records": SAMPLE_RECORDS}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1"
    assert len(body["predictions"]) == 2
    assert all(0.0 <= p["failure_probability"] <= 1.0 for p in body["predictions"])
    invalid = httpx.post(f"{endpoint}/predict", json={"records": [{"torque_nm": 1e9}]})
    assert invalid.status_code == 422

    # A run whose data fails validation stops at validate: the partition is quarantined, nothing
    # is trained or deployed, and the endpoint keeps serving version 1.
    faults = {
        "null_ratio": 0.0,
        "out_of_range_ratio": 0.02,
        "duplicate_ratio": 0.0,
        "schema_drift": "none",
    }
    result, stdout, _ = airflow_home.run_dag(
        ROOT / "dags" / "use_cases.py",
        "predictive_maintenance",
        "2026-11-04T00:00:00+00:00",
        {**conf, "days": 1, "faults": faults},
        env=names,
    )
    assert result["state"] == "failed", result
    assert result["tasks"]["ingest"] == "success" and result["tasks"]["validate"] == "failed"
    assert {result["tasks"][t] for t in ("train", "register", "deploy", "smoke_test")} == {
        "upstream_failed"
    }, result
    assert result["tasks"]["report"] == "failed"  # written, and failing with the run
    assert "validate: **failed**" in _report_markdown(settings, result["run_id"])
    assert dt.date(2026, 11, 3) not in lake.committed_dates(settings.lake, table="telemetry")
    quarantined = Path(settings.lake) / "_quarantine" / "telemetry" / "date=2026-11-03"
    assert len(list(quarantined.iterdir())) == 1
    response = httpx.post(f"{endpoint}/predict", json={"records": SAMPLE_RECORDS}, timeout=30)
    assert response.status_code == 200 and response.json()["model_version"] == "1"

    # A model below the quality bar is registered as challenger but never deployed: promote
    # keeps version 1 as champion, deploy re-applies it (a no-op), and version 1 keeps serving.
    # Same days and hyperparameters as version 1, so training is forced (else it is reused).
    result, stdout, _ = airflow_home.run_dag(
        ROOT / "dags" / "use_cases.py",
        "predictive_maintenance",
        "2026-11-03T12:00:00+00:00",
        {**conf, "min_f1": 0.99, "deploy_mode": "canary", "force_retrain": True},
        env=names,
    )
    assert result["state"] == "success", f"{result}\n{stdout[-6000:]}"
    assert set(result["tasks"].values()) == {"success"}, result
    assert "stays challenger: holdout F1" in stdout
    first = _report_markdown(settings, result["run_id"]).splitlines()[2]
    assert first.startswith("**not promoted: v2 stays challenger: holdout F1"), first
    client = MlflowClient(settings.tracking_uri)
    assert client.get_model_version_by_alias(settings.model_name, "challenger").version == "2"
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == "1"
    response = httpx.post(f"{endpoint}/predict", json={"records": SAMPLE_RECORDS}, timeout=30)
    assert response.json()["model_version"] == "1"
    # deploy_mode canary with the champion kept: nothing to canary, version 1 stays stable
    health = httpx.get(f"{endpoint}/healthz", timeout=30).json()
    assert health["routing"]["stable"] == "1" and health["routing"]["canary"] is None


def test_the_forms_defaults_train_a_model_above_the_bar_and_serve_it(
    local_stack, airflow_home, tmp_path
):
    """What a user gets from the trigger form as it opens (no field changed): a model above the
    quality bar, promoted and served, and a report that says so first. A lake of its own: the
    default fleet is six times the earlier tests', which the volume check would flag."""
    result, stdout, _ = airflow_home.run_dag(
        ROOT / "dags" / "use_cases.py",
        "predictive_maintenance",
        "2026-11-20T00:00:00+00:00",
        {},
        env={"CONVEYOR_LAKE_ROOT": str(tmp_path / "lake")},
    )
    assert result["state"] == "success", f"{result}\n{stdout[-6000:]}"
    assert set(result["tasks"].values()) == {"success"}, result
    first = _report_markdown(local_stack, result["run_id"]).splitlines()[2]
    assert first.startswith("**serving version "), first
    served = first.removeprefix("**serving version ").split(":")[0]
    endpoint = f"{local_stack.serve_base_url}{local_stack.serve_route_prefix}"
    response = httpx.post(f"{endpoint}/predict", json={"records": SAMPLE_RECORDS}, timeout=30)
    assert response.status_code == 200 and response.json()["model_version"] == served


def _report_markdown(settings, run_id: str) -> str:
    from pipelines.report import report_dir

    return (
        report_dir(settings.reports_dir, "predictive_maintenance", run_id) / "report.md"
    ).read_text()


def _assert_lineage_chain(events: Path, local_stack) -> None:
    """The run's OpenLineage events link partition → model directory → model version →
    endpoint: each task's outputs are the next one's inputs, named the same way."""
    done = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["eventType"] == "COMPLETE" and "." in event["job"]["name"]:
            done[event["job"]["name"].split(".", 1)[1]] = event

    def named(task: str, side: str) -> set[tuple[str, str]]:
        assert task in done, f"no COMPLETE event for {task}; got {sorted(done)}"
        return {(d["namespace"], d["name"]) for d in done[task][side]}

    lake_root = os.path.abspath(local_stack.lake)
    partitions = {("file", f"{lake_root}/telemetry/date=2026-11-0{d}") for d in (1, 2)}
    assert named("ingest", "outputs") == partitions
    assert named("validate", "inputs") == partitions
    assert named("train", "inputs") == partitions
    model_dir = named("train", "outputs")
    assert len(model_dir) == 1 and named("register", "inputs") == model_dir
    (version,) = named("register", "outputs")
    assert version[1] == f"models/{local_stack.model_name}/versions/1", version
    assert named("deploy", "inputs") == {version}
    (served,) = named("deploy", "outputs")
    assert served[0].startswith("http://") and served[1] == local_stack.serve_route_prefix
