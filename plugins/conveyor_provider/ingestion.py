"""The ingestion half shared by the DAGs that ingest: their source Params, where a source's
data comes from (a Connection for PostgreSQL), and which day a run covers."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param

VALIDATED_TELEMETRY = Asset(
    name="validated_telemetry",
    uri="conveyor://lake/telemetry/validated",
    group="conveyor",
    extra={"partitioned_by": "day"},
)
"""One event per lake partition that passed validation; the event's partition key is its day.
``telemetry_daily`` produces it, ``model_training`` is scheduled on it."""

INGEST_PARAMS = {
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
}


def source_of(kind: str, settings) -> tuple[str, str]:
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


def ingest_with_params(days: list[dt.date], params, run_id: str) -> list[str]:
    """Ingest ``days`` from the run's source Params; returns the dates committed."""
    from pipelines.data.ingest import ingest_days
    from pipelines.settings import get_settings
    from pipelines.usecases.predictive_maintenance.generator import FaultConfig, GeneratorConfig

    settings = get_settings()
    source, table = source_of(params["source"], settings)
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


def last_complete_day(context) -> dt.date:
    """The day a manual run covers: the last complete UTC day at its data interval's end.

    A manual run has a zero-width interval at its logical date, which is usually mid-day: it
    covers the day before, whose data is complete (the freshness check rejects readings from
    the future). A run for the interval [D, D+1) covers D.
    """
    end = context.get("data_interval_end") or context["dag_run"].run_after
    return end.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def partition_day(partition_key: str) -> dt.date:
    """The day of a daily partition key (``2026-11-23T00:00:00``, as the timetable writes it)."""
    try:
        return dt.datetime.fromisoformat(partition_key).date()
    except (TypeError, ValueError):
        raise ValueError(
            f"partition_key {partition_key!r} is not a day (YYYY-MM-DDT00:00:00)"
        ) from None
