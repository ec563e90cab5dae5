"""
### Model training: train, register, promote and serve once a week of validated data is complete

Scheduled by data, not by the clock: `telemetry_daily` emits a **validated_telemetry** event
per validated day, and this DAG runs once per ISO week (Monday to Sunday) when all seven of
its days are validated: its partition key names the week. A 7-day backfill of
`telemetry_daily` over a calendar week therefore makes exactly one training run; a week with
a quarantined day waits until that day is fixed and validated again (rerun its
`telemetry_daily` run). `max_active_runs=1`: trainings never overlap.

Steps (shared with `predictive_maintenance`, see its doc):
**partitions** (the week's days) → **plan** (reuse a version trained on exactly these inputs
unless **Force retrain**) → **train** (Ray Train, deferrable) → **register** (MLflow,
`challenger`) → **promote** (quality bar and champion comparison) → **deploy** (Ray Serve, by
**deploy_mode**, automatic rollback) → **smoke_test** → **report**.

Retraining a week by hand: trigger this DAG with a partition key (UI "Trigger" → partition
key, or `"partition_key": "2026-11-23 (W48)"` in the REST body).
"""

from __future__ import annotations

from airflow.sdk import (
    PartitionedAssetTimetable,
    RollupMapper,
    StartOfWeekMapper,
    WeekWindow,
    dag,
    task,
)

from conveyor_provider.defaults import RETRIES, START_DATE
from conveyor_provider.ingestion import VALIDATED_TELEMETRY
from conveyor_provider.training import TRAINING_PARAMS, settings_macro, train_register_serve

WEEKLY = RollupMapper(upstream_mapper=StartOfWeekMapper(), window=WeekWindow())
"""The asset policy: seven daily partitions (Monday to Sunday) roll up into one week; the run
fires when all seven have arrived (the default wait policy, ``WaitForAll``)."""


@dag(
    dag_id="model_training",
    schedule=PartitionedAssetTimetable(assets=VALIDATED_TELEMETRY, default_partition_mapper=WEEKLY),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["predictive-maintenance", "conveyor", "training"],
    default_args=RETRIES,
    doc_md=__doc__,
    user_defined_macros={"settings": settings_macro},
    params=TRAINING_PARAMS,
)
def model_training():
    @task
    def partitions(partition_key=None) -> list[str]:
        """The week's seven days, all committed in the lake (a one-line error otherwise)."""
        from pipelines.data.lake import week_partitions
        from pipelines.settings import get_settings

        return week_partitions(get_settings().lake, partition_key)

    train_register_serve(partitions(), dates_task="partitions")


model_training()
