"""A use case from outside the repository (tests/fixtures/outside_use_case: a package with
its own spec, generator, learner and suite, found through its entry point) goes through the
core's data and ML stages with no edit to Conveyor: ingest, validation with its own suite,
training on the real Ray cluster with the core's driver, and the promotion gate in its own
direction (lower MAE is better).

The package is on this process's path, as ``pip install`` would put it, but not on the Ray
cluster's: the training job gets it the way the DAG's train task ships it
(``pipelines.catalog.runtime_env_for``), so a job that could not import it would fail."""

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from conveyor.processes import wait_until
from conveyor_provider.hooks.ray_jobs import RayJobsHook
from conveyor_provider.operators.ray_job import DEFAULT_EXCLUDES, PROJECT_ROOT
from pipelines.catalog import get_use_case, import_object, learner_of, runtime_env_for
from pipelines.locks import Lock

pytestmark = pytest.mark.integration

OUTSIDE = Path(__file__).resolve().parents[2] / "fixtures" / "outside_use_case"
DAYS = [dt.date(2026, 11, 2) + dt.timedelta(days=i) for i in range(4)]


@pytest.fixture
def energy(monkeypatch):
    monkeypatch.syspath_prepend(str(OUTSIDE))
    return get_use_case("energy_demand")


def test_an_outside_use_case_ingests_validates_trains_on_ray_and_passes_its_own_gate(
    energy, local_stack, tmp_path
):
    from pipelines.data.ingest import ingest_days
    from pipelines.data.validation import suite_path_for, validate_days
    from pipelines.ml.promotion import promote
    from pipelines.ml.registry import register_training

    lake_root = str(tmp_path / "lake")
    generate = import_object(energy.generator)
    ingest_days(DAYS, lake_root, table=energy.table, generate=generate)
    reports = validate_days(
        lake_root,
        DAYS,
        tmp_path / "validation",
        suite_path=suite_path_for(energy),
        table=energy.table.name,
    )
    assert all(r.success for r in reports), [r.critical_failures for r in reports]

    shipped = runtime_env_for(energy)
    assert shipped["env_vars"] == {"CONVEYOR_USE_CASES": "energy_demand:USE_CASE"}
    assert shipped["py_modules"] == [str(OUTSIDE / "energy_demand")]
    assert runtime_env_for("predictive_maintenance") == {}  # travels with the project

    result_path = tmp_path / "result.json"
    hook = RayJobsHook(address=local_stack.ray_jobs_address)
    sid = f"energy-train-{time.time_ns()}"
    hook.submit(
        sid,
        "python -m ray_jobs.train --use-case energy_demand"
        f" --lake {lake_root} --dates {','.join(d.isoformat() for d in DAYS)}"
        f" --storage-path {tmp_path / 'runs'} --name energy --epochs 6 --num-workers 2"
        " --use-gpu false --batch-size 64 --lr 0.01"
        # Validation and holdout scored by Ray Data actors, which import the outside use case
        # from what the job shipped, as the training workers do.
        " --evaluate-on cluster",
        runtime_env={
            "working_dir": str(PROJECT_ROOT),
            "excludes": DEFAULT_EXCLUDES,
            **shipped,
            "env_vars": {**shipped["env_vars"], "CONVEYOR_RESULT_PATH": str(result_path)},
        },
    )
    wait_until(lambda: hook.job_status(sid) in ("SUCCEEDED", "FAILED", "STOPPED"), sid, 600)
    assert hook.job_status(sid) == "SUCCEEDED", hook.logs(sid)[-3000:]

    result = json.loads(result_path.read_text())
    assert result["params"]["evaluated_on"] == "cluster"
    metrics = result["metrics"]
    assert {"mae", "rmse"} <= set(metrics) and "f1" not in metrics  # the learner's metrics
    # The network beats predicting the mean by far: demand spreads over tens of kWh.
    assert metrics["mae"] < 0.5 * result["baseline"]["mae"] + 5.0, metrics

    version = register_training(local_stack.tracking_uri, "energy_test", result, "energy")
    loose = energy.gate.with_bar(bar=metrics["mae"] + 1.0)  # lower is better: a maximum
    decision = promote(
        local_stack.tracking_uri,
        "energy_test",
        version.version,
        lake_root,
        use_case=energy,
        gate=loose,
        lock=Lock("promote-energy", str(tmp_path)),
    )
    assert decision.promoted, decision.reason
    assert "holdout MAE" in decision.reason and "<= bar" in decision.reason
    strict = energy.gate.with_bar(bar=metrics["mae"] / 10)
    again = register_training(local_stack.tracking_uri, "energy_test", result, "energy-2")
    refused = promote(
        local_stack.tracking_uri,
        "energy_test",
        again.version,
        lake_root,
        use_case=energy,
        gate=strict,
        lock=Lock("promote-energy", str(tmp_path)),
    )
    assert not refused.promoted and "above the quality bar" in refused.reason

    from pipelines.ml.model import LoadedModel

    learner = learner_of(energy)
    model = LoadedModel(result["model_dir"], learner)
    cold, hot = model.score(learner.record_columns(learner.sample_records))
    assert learner.valid_scores([cold, hot]) and cold > 0 and hot > 0
