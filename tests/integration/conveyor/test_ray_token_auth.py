"""Ray token authentication on real Ray heads.

The session's head (``tests/local_stack.py``) runs as on the machine of anyone who ever ran
Ray: ``RAY_AUTH_MODE`` unset and a token in ``$HOME/.ray/auth_token``, so ``ray start`` turns
token auth on and every other integration and e2e test (training jobs through the hook and
the trigger, deploys through the Serve REST API, the DAGs) runs against it. Here: that it
really refuses a request without the token, that each Conveyor client sends it, that a head
with ``RAY_AUTH_MODE=disabled`` runs jobs and deploys as well, and that a head that fails its
start leaves no process behind."""

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from conveyor.processes import StackError, free_port, stop, wait_until
from conveyor.stack import start_ray
from conveyor_provider.hooks.ray_jobs import RayJobsHook
from conveyor_provider.operators.ray_job import DEFAULT_EXCLUDES, PROJECT_ROOT
from pipelines.data import lake
from pipelines.ml.features import Scaler
from pipelines.ml.model import save_model_dir
from pipelines.ml.registry import register_training
from pipelines.ray_auth import auth_headers, find_ray_token
from pipelines.serving.admin import ServeAdmin
from pipelines.serving.client import DeployError, predict
from pipelines.serving.rollout import deploy
from pipelines.serving.target import target_from_settings
from pipelines.settings import ConveyorSettings
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_days
from pipelines.usecases.predictive_maintenance.learner import LEARNER, SAMPLE_RECORDS
from ray_jobs.train import run_local

pytestmark = pytest.mark.integration

RAY_PORTS = (
    "ray_gcs_port ray_dashboard_port ray_client_port ray_dashboard_agent_port serve_http_port"
    " serve_haproxy_stats_port serve_haproxy_metrics_port serve_fallback_proxy_http_port"
    " serve_fallback_proxy_grpc_port"
).split()


def _own_head_settings(local_stack, home: Path) -> ConveyorSettings:
    """A second head's settings: its own ports and home, the session's MLflow."""
    ports = {name: free_port() for name in RAY_PORTS}
    return ConveyorSettings(
        home=home, mlflow_tracking_uri=local_stack.tracking_uri, ray_num_cpus=3, **ports
    )


def test_the_session_head_refuses_requests_without_the_token(ray_head):
    address = ray_head.ray_jobs_address
    token = find_ray_token()
    assert token == (Path(os.environ["HOME"]) / ".ray" / "auth_token").read_text()
    assert "RAY_AUTH_MODE" not in os.environ
    mode = httpx.get(f"{address}/api/authentication_mode", timeout=30).json()
    assert mode == {"authentication_mode": "token"}

    jobs = f"{address}/api/jobs/"
    assert httpx.get(jobs, timeout=30).status_code == 401
    assert httpx.get(jobs, headers=auth_headers("not-the-token"), timeout=30).status_code == 403
    assert httpx.get(jobs, headers=auth_headers(token), timeout=30).status_code == 200

    # Each client of Conveyor's sends it: the Jobs SDK in the hook, Serve's REST API, the CLI.
    assert isinstance(RayJobsHook(address=address).client.list_jobs(), list)
    assert "applications" in ServeAdmin(address, ray_token=token).status()
    with pytest.raises(DeployError, match="HTTP 401: Ray token authentication is on"):
        ServeAdmin(address).status()
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "conveyor"), "serving"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert isinstance(json.loads(cli.stdout), dict)


def test_a_head_without_token_auth_runs_jobs_and_deploys(local_stack, tmp_path, monkeypatch):
    """``RAY_AUTH_MODE=disabled`` beats the token file in HOME: the head runs without auth,
    and a job (its driver joins the cluster, as the training driver does), a registered
    version's deploy and the endpoint all work against it. The version is trained in this
    process: what is under test is each client's auth, not training (every training test runs
    on the token-auth head)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    settings = _own_head_settings(local_stack, tmp_path / "home")
    record = start_ray(settings)
    try:
        address = settings.ray_jobs_address
        assert httpx.get(f"{address}/api/jobs/", timeout=30).status_code == 200
        assert find_ray_token() is None

        hook = RayJobsHook(address=address)
        sid = f"no-auth-job-{time.time_ns()}"
        hook.submit(
            sid,
            "python -c \"import ray; ray.init(); print('joined', len(ray.nodes()), 'node')\"",
            runtime_env={"working_dir": str(PROJECT_ROOT), "excludes": DEFAULT_EXCLUDES},
        )
        wait_until(lambda: hook.job_status(sid) in ("SUCCEEDED", "FAILED", "STOPPED"), sid, 300)
        assert hook.job_status(sid) == "SUCCEEDED", hook.logs(sid)[-3000:]
        assert "joined 1 node" in hook.logs(sid)

        model = "pm_no_ray_auth"
        result = _trained_here(tmp_path)
        version = register_training(local_stack.tracking_uri, model, result, "no-auth").version
        target = target_from_settings(
            settings,
            use_case="predictive_maintenance",
            app_name="pm-no-auth",
            route_prefix="/pm-no-auth",
            model_name=model,
        )
        assert target.ray_token is None
        deploy(target, version)
        answer = predict(target.endpoint, SAMPLE_RECORDS[:1])
        assert answer["model_version"] == str(version), answer
    finally:
        stop(record)


def _trained_here(tmp_path: Path) -> dict:
    """A small model trained in this process, as a training job's result names it."""
    day = dt.date(2026, 11, 1)
    lake_root = str(tmp_path / "lake")
    ingest_days([day], lake_root, generator=GeneratorConfig(machines=6, minutes=720))
    frame = lake.read_partition(lake_root, day, table="telemetry")
    scaler = Scaler.fit(LEARNER.features(frame), LEARNER.feature_names)
    config = {
        "use_case": "predictive_maintenance",
        "files": lake.partition_files(lake_root, [day], table="telemetry"),
        "scaler": scaler.as_dict(),
        "epochs": 1,
        "batch_size": 256,
        "lr": 3e-3,
        "hidden": 16,
        "pos_weight": 5.0,
    }
    state = run_local(config)["state_dict"]
    meta = {"hidden": 16, "threshold": 0.5}
    directory = save_model_dir(tmp_path / "model", state, scaler, meta, LEARNER)
    return {"model_dir": str(directory), "train_dates": [day.isoformat()], "metrics": {}}


def test_a_head_that_fails_its_start_leaves_no_process(local_stack, tmp_path):
    settings = _own_head_settings(local_stack, tmp_path / "home")
    started = []
    with pytest.raises(StackError, match="Ray head not ready after 1s"):
        start_ray(settings, timeout=1.0, started=started.append)
    (record,) = started
    assert not psutil.pid_exists(record.pid), "the ray start process is still running"
    gcs = f"--port={settings.ray_gcs_port}"
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(str(settings.ray_gcs_port) in arg for arg in p.info["cmdline"] or [])
        and p.pid != os.getpid()
    ]
    assert not left, f"processes of the failed head ({gcs}) left running: {left}"
