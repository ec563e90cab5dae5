"""
### Telemetry, daily: ingest yesterday's telemetry into the lake and validate it

Each run owns one **partition**, a day: the run at midnight UTC ingests the day that just
ended. Its steps are the first two of `predictive_maintenance`:

1. **ingest** the day's Parquet partition from the chosen **source** (generator, landing-zone
   files, or the PostgreSQL table of Connection `conveyor_telemetry_db`), committed atomically
   and replaced, never appended, so a rerun of the same day gives the same partition;
2. **validate** it with the Great Expectations suite in `data_checks/`. A partition that fails
   a critical expectation is quarantined and the run fails; one that passes emits the
   **validated_telemetry** asset event for its day, which is what schedules `model_training`.

**Backfills**: `airflow backfill create --dag-id telemetry_daily --from-date 2026-11-24
--to-date 2026-11-30` (or `POST /api/v2/backfills`, or the UI's Backfill button) makes one
run, and one partition, per day; `max_active_runs` bounds how many run at once.
`CONVEYOR_DAILY_CATCHUP=true` makes the scheduler catch up on missed days by itself.
"""

from __future__ import annotations

from airflow.sdk import CronPartitionTimetable, dag, task

from conveyor_provider.defaults import RETRIES, START_DATE
from conveyor_provider.ingestion import (
    INGEST_PARAMS,
    VALIDATED_TELEMETRY,
    ingest_with_params,
    partition_day,
)
from conveyor_provider.operators.validation import DataValidationOperator
from pipelines.settings import get_settings


@dag(
    dag_id="telemetry_daily",
    # The run at midnight owns the day before it (run_offset=-1): its partition key.
    schedule=CronPartitionTimetable("0 0 * * *", timezone="UTC", run_offset=-1),
    start_date=START_DATE,
    catchup=get_settings().daily_catchup,
    max_active_runs=4,
    tags=["predictive-maintenance", "conveyor", "ingestion"],
    default_args=RETRIES,
    doc_md=__doc__,
    params=INGEST_PARAMS,
)
def telemetry_daily():
    @task
    def ingest(partition_key=None, params=None, run_id=None) -> list[str]:
        return ingest_with_params([partition_day(partition_key)], params, run_id)

    DataValidationOperator(task_id="validate", dates=ingest(), outlets=[VALIDATED_TELEMETRY])


telemetry_daily()
