"""The ingestion half shared by a use case's DAGs that ingest: their source Params, where a
source's data comes from (a Connection for PostgreSQL), which day a run covers, and the asset
a validated day announces."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param

from pipelines.usecase import UseCase


def validated_asset(use_case: UseCase) -> Asset:
    """One event per lake partition of the use case's table that passed validation; the
    event's partition key is its day. The daily DAG produces it, the training DAG is
    scheduled on it."""
    return Asset(
        name=use_case.validated_asset_name,
        uri=use_case.validated_asset_uri,
        group="conveyor",
        extra={"partitioned_by": "day"},
    )


def json_schema_param(schema: dict) -> Param:
    """A ``Param`` from a use case's JSON-schema field (``default`` plus the schema)."""
    fields = dict(schema)
    return Param(fields.pop("default", None), **fields)


def ingest_params(use_case: UseCase) -> dict[str, Param]:
    """The source Param every ingesting DAG has, then the use case's own fields."""
    source = Param(
        "generator",
        enum=["generator", "landing", "postgres"],
        title="Data source",
        description=(
            f"'generator': the built-in {use_case.title.lower()} data generator; 'landing':"
            " CSV / JSON Lines / Parquet files (gzip allowed) named with the date under"
            f" CONVEYOR_LANDING_ROOT/{use_case.name}/; 'postgres': the table of Connection"
            " conveyor_telemetry_db, read for the run's time window."
        ),
    )
    own = {name: json_schema_param(schema) for name, schema in use_case.source_params.items()}
    return {"source": source, **own}


def source_of(kind: str, settings, use_case_name: str) -> tuple[str, str | None]:
    """(source, SQL table) for ingest. Landing files are the use case's own folder,
    ``<landing root>/<use case>/`` (another use case's files are never read); the PostgreSQL
    URI comes from Connection ``conveyor_telemetry_db``, whose extra ``table`` names the
    table to read (default: the lake table's name)."""
    if kind == "generator":
        return "generator", None
    if kind == "landing":
        return use_case_name, None  # relative to the landing root, and checked inside it
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection("conveyor_telemetry_db")
    uri = conn.get_uri().split("?", 1)[0]
    return uri, conn.extra_dejson.get("table")


def ingest_with_params(use_case_name: str, days: list[dt.date], params, run_id: str) -> list[str]:
    """Ingest ``days`` from the run's source Params; returns the dates committed, which are
    the task's lineage outputs (so this runs inside a ``lineage_task``)."""
    from conveyor_provider.lineage import report_lineage
    from pipelines.catalog import get_use_case
    from pipelines.data.ingest import ingest_days, source_arguments
    from pipelines.lineage import Lineage, lake_partitions
    from pipelines.settings import get_settings

    use_case = get_use_case(use_case_name)
    settings = get_settings()
    source, sql_table = source_of(params["source"], settings, use_case.name)
    fields = {name: params[name] for name in use_case.source_params}
    extra = source_arguments(use_case, fields)
    results = ingest_days(
        days,
        settings.lake,
        table=use_case.table,
        source=source,
        landing_root=settings.landing,
        sql_table=sql_table,
        run_id=run_id,
        **extra,
    )
    dates = [r.date for r in results]
    report_lineage(Lineage(outputs=lake_partitions(settings.lake, use_case.table.name, dates)))
    return dates


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
