"""
### Predictive maintenance: telemetry → lake → validation → Ray training → MLflow → Ray Serve

Each run handles the **days** ending at the last complete day of its data interval (a scheduled
run for [D, D+1) ends at D; a manual run ends the day before it was triggered), or the
**From**..**To** date range when both are given:

1. **ingest** one Parquet partition per day from the chosen **source** (generator, landing-zone
   files, or the PostgreSQL table of Connection `conveyor_telemetry_db`), committed atomically
   with a manifest (replaced, never appended);
2. **validate** every partition with the Great Expectations suite in `data_checks/`; a critical
   failure quarantines the partition and stops the run here, so nothing downstream sees bad
   data (**Data Docs** button: the run's validation pages);
3. **train** a PyTorch classifier with Ray Train (DDP) as a Ray job (deferrable; a retry
   reattaches to the same job, and the run name is stable so training resumes from its last
   checkpoint; **Ray job** button: the job on the Ray dashboard);
4. **register** the model version in MLflow (once per training run) as `challenger`;
5. **promote** it to `champion` only if it passes the quality bar and beats the current
   champion on the same holdout; otherwise the champion stays (with no champion at all, the
   run ends here);
6. **deploy** the champion with Ray Serve (a Ray job on the cluster), as chosen by
   **deploy_mode**: `full` moves all traffic to it, `canary` gives it a share of traffic
   (promote or roll back with the `serving_rollout` DAG), `shadow` sends it copies of live
   requests, `none` deploys nothing. A version that fails to start or fails its smoke
   requests is rolled back automatically; the old one never stops serving;
7. **smoke_test** the live endpoint with real requests;
8. **report**: one page for the run (rows ingested, validation, training curve, holdout metrics,
   registered and served version, endpoint), written whatever happened (**Run report**
   button); it fails when an upstream task failed, so the run's state stays the pipeline's.

Trigger it from the UI (the form below), on its daily schedule (backfills: one partition per
date), or through the REST API (`POST /api/v2/dags/predictive_maintenance/dagRuns`).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from conveyor_provider.operators.ray_job import RayJobOperator
from conveyor_provider.operators.report import RunReportOperator
from conveyor_provider.operators.validation import DataValidationOperator

RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=10), "retry_exponential_backoff": True}


def _settings():
    """Conveyor's deployment settings, read when a template renders (on the worker)."""
    from pipelines.settings import get_settings

    return get_settings()


def _source(kind: str, settings) -> tuple[str, str]:
    """(source, table) for ingest: the PostgreSQL URI comes from Connection
    ``conveyor_telemetry_db`` (its extra ``table`` overrides the default table)."""
    if kind == "generator":
        return "generator", settings.telemetry_table
    if kind == "landing":
        return settings.landing, settings.telemetry_table
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection("conveyor_telemetry_db")
    uri = conn.get_uri().split("?", 1)[0]
    return uri, conn.extra_dejson.get("table", settings.telemetry_table)


def _run_day(context):
    """The day a run covers: the last complete UTC day at its data interval's end.

    A scheduled run for [D, D+1) covers D. A manual run has a zero-width interval at its
    logical date, which is usually mid-day: it covers the day before, whose data is complete
    (the freshness check rejects readings from the future).
    """
    import datetime as dt

    end = context.get("data_interval_end") or context["dag_run"].run_after
    return end.astimezone(dt.UTC).date() - dt.timedelta(days=1)


@dag(
    dag_id="predictive_maintenance",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["predictive-maintenance", "conveyor"],
    default_args=RETRIES,
    doc_md=__doc__,
    user_defined_macros={"settings": _settings},
    params={
        "days": Param(
            1,
            type="integer",
            minimum=1,
            maximum=60,
            title="Days",
            description="How many days, ending at the run's date, to ingest and train on.",
        ),
        "start_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="From (date)",
            description="With 'To', the days to ingest and train on (at most 60); overrides Days.",
        ),
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="To (date)",
            description="The last day of the range, inclusive.",
        ),
        "source": Param(
            "generator",
            enum=["generator", "landing", "postgres"],
            title="Data source",
            description=(
                "'generator': built-in AI4I-style data; 'landing': CSV / JSON Lines / Parquet"
                " files (gzip allowed) named with the date under CONVEYOR_LANDING_ROOT;"
                " 'postgres': the table of Connection conveyor_telemetry_db, read for the"
                " run's time window."
            ),
        ),
        "faults": Param(
            {
                "null_ratio": 0.0,
                "out_of_range_ratio": 0.0,
                "duplicate_ratio": 0.0,
                "schema_drift": "none",
            },
            type="object",
            title="Injected faults",
            description=(
                "Generator only, to demonstrate validation: null_ratio, out_of_range_ratio,"
                " duplicate_ratio (0..1) and schema_drift (none, extra_column, missing_column)."
            ),
        ),
        "machines": Param(
            50,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Machines",
            description="Generator only: machines per day.",
        ),
        "epochs": Param(5, type="integer", minimum=1, maximum=200, title="Epochs"),
        "num_workers": Param(2, type="integer", minimum=1, maximum=64, title="Ray Train workers"),
        "batch_size": Param(512, type="integer", minimum=8, maximum=65536, title="Batch size"),
        "lr": Param(3e-3, type="number", exclusiveMinimum=0, maximum=1, title="Learning rate"),
        "min_f1": Param(
            0.8,
            type="number",
            minimum=0,
            maximum=1,
            title="Quality bar (holdout F1)",
            description="A new model below it never becomes champion and is not deployed.",
        ),
        "promotion_margin": Param(
            0.01,
            type="number",
            minimum=0,
            maximum=1,
            title="Promotion margin (F1)",
            description="How much the new model must beat the champion by, on the same holdout.",
        ),
        "deploy_mode": Param(
            "full",
            enum=["full", "canary", "shadow", "none"],
            title="Deploy mode",
            description=(
                "full: all traffic to the new champion; canary: a share of traffic (see"
                " canary_fraction), promoted or rolled back by the serving_rollout DAG; shadow:"
                " a copy of live traffic, answers only logged; none: do not deploy."
            ),
        ),
        "canary_fraction": Param(
            0.1,
            type="number",
            minimum=0.01,
            maximum=1,
            title="Canary traffic share",
            description="Share of requests the canary answers (deploy_mode canary).",
        ),
        "use_gpu": Param(
            "auto",
            enum=["auto", "true", "false"],
            title="Use GPU",
            description="'auto' uses GPUs when the Ray cluster has them.",
        ),
    },
)
def predictive_maintenance():
    @task
    def ingest(params=None, run_id=None, **context) -> list[str]:
        from pipelines.ingest import days_to_ingest, ingest_days
        from pipelines.settings import get_settings
        from pipelines.sources.generator import FaultConfig, GeneratorConfig

        settings = get_settings()
        days = days_to_ingest(
            _run_day(context), params["days"], params["start_date"], params["end_date"]
        )
        source, table = _source(params["source"], settings)
        results = ingest_days(
            days,
            settings.lake,
            source=source,
            landing_root=settings.landing,
            table=table,
            generator=GeneratorConfig(machines=params["machines"]),
            faults=FaultConfig(**params["faults"]),
            run_id=run_id,
        )
        return [r.date for r in results]

    validate = DataValidationOperator(task_id="validate", dates=ingest())

    train = RayJobOperator(
        task_id="train",
        entrypoint=(
            "python -m ray_jobs.train --lake {{ settings().lake }}"
            " --dates {{ ti.xcom_pull(task_ids='validate') | join(',') }}"
            " --storage-path {{ settings().runs_dir }}"
            " --epochs {{ params.epochs }} --num-workers {{ params.num_workers }}"
            " --use-gpu {{ params.use_gpu }}"
            " --batch-size {{ params.batch_size }} --lr {{ params.lr }}"
        ),
    )

    @task
    def register(train_result: dict, run_id=None) -> dict:
        from pipelines.registry import register_training
        from pipelines.settings import get_settings

        settings = get_settings()
        return register_training(
            settings.tracking_uri,
            settings.model_name,
            train_result,
            train_result["run_name"],
            dag_run_id=run_id,
        ).as_dict()

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def promote(version: dict, params=None) -> str | None:
        """The version to serve: the challenger if it passes the quality bar and beats the
        champion on the same holdout, else the champion (re-deploying it is a no-op, and it
        restores the endpoint on a fresh cluster). With no champion at all, deploy and
        smoke_test are skipped, as they are with deploy_mode none. The decision's reason is the
        last line of this task's log."""
        from pipelines.promotion import promote as decide
        from pipelines.settings import get_settings

        settings = get_settings()
        decision = decide(
            settings.tracking_uri,
            version["name"],
            version["version"],
            settings.lake,
            min_f1=params["min_f1"],
            margin=params["promotion_margin"],
            lock_path=settings.home_dir / "locks" / f"promote-{version['name']}.lock",
        )
        return None if params["deploy_mode"] == "none" else decision.champion_after

    deploy = RayJobOperator(
        task_id="deploy",
        entrypoint=(
            "python -m ray_jobs.deploy"
            " --action {{ 'deploy' if params.deploy_mode == 'full' else params.deploy_mode }}"
            " --model-version {{ ti.xcom_pull(task_ids='promote') }}"
            " --fraction {{ params.canary_fraction }}"
            " {{ settings().rollout_args() }}"
        ),
    )

    @task
    def smoke_test(rollout: dict) -> dict:
        """From the Airflow side: the endpoint answers with a version the routing names."""
        from pipelines.serving import smoke_test_routing
        from pipelines.settings import get_settings

        settings = get_settings()
        token = settings.serve_token.get_secret_value()
        return smoke_test_routing(settings.serve_endpoint, rollout["routing"], token=token)

    validate >> train
    registered = register(train.output)
    promote(registered) >> deploy
    smoke_test(deploy.output) >> RunReportOperator(task_id="report")


predictive_maintenance()
