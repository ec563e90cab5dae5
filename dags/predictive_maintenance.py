"""
### Predictive maintenance in one run: telemetry → lake → validation → training → serving

Run it from the UI (the form below) or the REST API
(`POST /api/v2/dags/predictive_maintenance/dagRuns`) to go from raw data to a served model in
one run. It has no schedule: on a schedule, `telemetry_daily` ingests and validates each day,
and `model_training` trains when a week of validated days is complete.

A run covers the **Days** ending the day before it was triggered, or the **From**..**To** date
range when both are given:

1. **ingest** one Parquet partition per day from the chosen **source** (generator, landing-zone
   files, or the PostgreSQL table of Connection `conveyor_telemetry_db`), committed atomically
   with a manifest (replaced, never appended);
2. **validate** every partition with the Great Expectations suite in `data_checks/`; a critical
   failure quarantines the partition and stops the run here, so nothing downstream sees bad
   data (**Data Docs** button: the run's validation pages);
3. **plan** the training: when a model version was already trained on exactly these partitions
   (same content hashes) and hyperparameters, it is reused and **train** is skipped, unless
   **Force retrain** is on;
4. **train** a PyTorch classifier with Ray Train (DDP) as a Ray job (deferrable; a retry
   reattaches to the same job, and the run name is stable so training resumes from its last
   checkpoint; **Ray job** button: the job on the Ray dashboard);
5. **register** the model version in MLflow (once per training run) as `challenger`;
6. **promote** it to `champion` only if it passes the quality bar and beats the current
   champion on the same holdout; otherwise the champion stays (with no champion at all, the
   run ends here);
7. **deploy** the champion with Ray Serve (a Ray job on the cluster), as chosen by
   **deploy_mode**: `full` moves all traffic to it, `canary` gives it a share of traffic
   (promote or roll back with the `serving_rollout` DAG), `shadow` sends it copies of live
   requests, `none` deploys nothing. A version that fails to start or fails its smoke
   requests is rolled back automatically; the old one never stops serving;
8. **smoke_test** the live endpoint with real requests;
9. **report**: one page for the run (rows ingested, validation, training curve, holdout metrics,
   registered and served version, endpoint), written whatever happened (**Run report**
   button); it fails when an upstream task failed, so the run's state stays the pipeline's.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from conveyor_provider.defaults import RETRIES, START_DATE
from conveyor_provider.ingestion import INGEST_PARAMS, ingest_with_params, last_complete_day
from conveyor_provider.operators.validation import DataValidationOperator
from conveyor_provider.training import TRAINING_PARAMS, settings_macro, train_register_serve


@dag(
    dag_id="predictive_maintenance",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["predictive-maintenance", "conveyor"],
    default_args=RETRIES,
    doc_md=__doc__,
    user_defined_macros={"settings": settings_macro},
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
        **INGEST_PARAMS,
        **TRAINING_PARAMS,
    },
)
def predictive_maintenance():
    @task
    def ingest(params=None, run_id=None, **context) -> list[str]:
        from pipelines.data.ingest import days_to_ingest

        last_day = last_complete_day(context)
        days = days_to_ingest(last_day, params["days"], params["start_date"], params["end_date"])
        return ingest_with_params(days, params, run_id)

    validate = DataValidationOperator(task_id="validate", dates=ingest())
    train_register_serve(validate.output, dates_task="ingest")


predictive_maintenance()
