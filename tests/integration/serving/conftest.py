"""Registered model versions for the serving tests, on the session's real Ray head and MLflow.

Versions are small real models (trained in-process for a few epochs), registered through the
same ``register_training`` the DAG uses. One version is broken on purpose: its weights are
NaN, as a diverged training run would leave them, so its health check fails.
"""

import datetime as dt

import numpy as np
import pytest

from pipelines.data import lake
from pipelines.ml.features import Scaler
from pipelines.ml.model import save_model_dir
from pipelines.ml.registry import register_training
from pipelines.ray_auth import find_ray_token
from pipelines.serving.admin import ServeAdmin
from pipelines.serving.rollout import deploy
from pipelines.serving.target import target_from_settings
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_day
from pipelines.usecases.predictive_maintenance.learner import LEARNER
from ray_jobs.train import run_local

DAY = dt.date(2026, 11, 3)
MODEL = "pm_serving_test"
USE_CASE = "predictive_maintenance"


@pytest.fixture(scope="session")
def versions(local_stack, tmp_path_factory) -> dict[str, str]:
    """{"a": v, "b": v, "nan": v}: two healthy versions and one whose weights are NaN."""
    root = tmp_path_factory.mktemp("serving-models")
    ingest_day(DAY, str(root / "lake"), generator=GeneratorConfig(machines=8, minutes=720))
    frame = lake.read_partition(str(root / "lake"), DAY, table="telemetry")
    scaler = Scaler.fit(LEARNER.features(frame), LEARNER.feature_names)
    base = {
        "use_case": USE_CASE,
        "files": lake.partition_files(str(root / "lake"), [DAY], table="telemetry"),
        "scaler": scaler.as_dict(),
        "epochs": 2,
        "batch_size": 256,
        "lr": 3e-3,
        "hidden": 16,
        "pos_weight": 5.0,
    }
    out = {}
    for label, seed in (("a", 0), ("b", 1), ("nan", 2)):
        state = run_local({**base, "seed": seed})["state_dict"]
        if label == "nan":
            state = {k: v * np.nan for k, v in state.items()}
        meta = {"hidden": 16, "threshold": 0.5}
        directory = save_model_dir(root / label, state, scaler, meta, LEARNER)
        result = {"model_dir": str(directory), "train_dates": [DAY.isoformat()], "metrics": {}}
        key = f"serving-test-{label}"
        out[label] = register_training(local_stack.tracking_uri, MODEL, result, key).version
    return out


@pytest.fixture(scope="session")
def served(versions, local_stack):
    """Version "a" behind its router, deployed once for the endpoint tests (removed after)."""
    target = target_from_settings(
        local_stack,
        use_case=USE_CASE,
        app_name="pm-endpoint",
        route_prefix="/pm-endpoint",
        model_name=MODEL,
        predictor={"max_batch_size": 16},
    )
    deploy(target, versions["a"])
    yield target
    admin = ServeAdmin(target.dashboard, ray_token=target.ray_token)
    admin.put(
        [c for n, c in admin.configs().items() if not target.owns(n)],
        target.http_host,
        target.http_port,
    )


@pytest.fixture
def target_for(local_stack):
    """A ServeTarget factory on the session's cluster; every application the test made is
    removed afterwards (other applications are left as they were)."""
    made = []

    def make(app_name: str, **overrides):
        target = target_from_settings(
            local_stack,
            use_case=USE_CASE,
            app_name=app_name,
            route_prefix=f"/{app_name}",
            model_name=MODEL,
            timeout=180.0,
            **overrides,
        )
        made.append(target)
        return target

    yield make
    admin = ServeAdmin(local_stack.ray_jobs_address, ray_token=find_ray_token())
    for target in made:
        keep = [c for n, c in admin.configs().items() if not target.owns(n)]
        admin.put(keep, target.http_host, target.http_port)
