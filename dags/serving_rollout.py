"""
### Serving rollout: canary, shadow, promotion and rollback of the live model

Operates on the Ray Serve application the `predictive_maintenance` DAG deploys, one action per
run (a Ray job on the cluster, next to Serve):

- **deploy**: all traffic to **version**;
- **canary**: **fraction** of requests to **version**, the rest to the stable one (every
  response names the version that served it, header `X-Conveyor-Model-Version`);
- **shadow**: **version** gets a copy of live requests; its answers are logged, never returned;
- **promote**: the canary becomes the stable version;
- **rollback**: ends the canary, else the shadow, else returns to the previous stable version.

A version that fails to start or fails its smoke requests is rolled back automatically: the
routing from before the run keeps serving. Runs are idempotent: repeating one re-checks it.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from conveyor_provider.defaults import START_DATE
from conveyor_provider.operators.ray_job import RayJobOperator
from conveyor_provider.training import settings_macro, smoke_test


@dag(
    dag_id="serving_rollout",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["serving", "conveyor"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    doc_md=__doc__,
    user_defined_macros={"settings": settings_macro},
    params={
        "action": Param(
            "promote",
            enum=["deploy", "canary", "shadow", "promote", "rollback"],
            title="Action",
        ),
        "version": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]+$",
            title="Model version",
            description="Registered version for deploy, canary and shadow.",
        ),
        "fraction": Param(
            0.1, type="number", minimum=0.01, maximum=1, title="Canary traffic share"
        ),
    },
)
def serving_rollout():
    rollout = RayJobOperator(
        task_id="rollout",
        entrypoint=(
            "python -m ray_jobs.deploy --action {{ params.action }}"
            "{% if params.version %} --model-version {{ params.version }}{% endif %}"
            " --fraction {{ params.fraction }} {{ settings().rollout_args() }}"
        ),
    )

    smoke_test(rollout.output)


serving_rollout()
