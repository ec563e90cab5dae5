"""Predictive maintenance's ingest: the core's ``ingest_day`` with the telemetry table and
generator, and landing files as an IoT gateway drops them (the CLI, the tests and the
benchmarks use these)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipelines.data.ingest import GENERATOR, IngestResult
from pipelines.data.ingest import ingest_day as ingest_table_day
from pipelines.data.sources.files import write_landing_file as write_file
from pipelines.usecases.predictive_maintenance import USE_CASE
from pipelines.usecases.predictive_maintenance.generator import (
    FaultConfig,
    GeneratedDays,
    GeneratorConfig,
)


def ingest_day(
    day: dt.date,
    lake_root: str,
    *,
    source: str = GENERATOR,
    landing_root: str | Path | None = None,
    table: str | None = None,
    generator: GeneratorConfig | None = None,
    faults: FaultConfig | None = None,
    run_id: str | None = None,
) -> IngestResult:
    """One day of telemetry into the lake; ``table`` is the PostgreSQL table to read."""
    return ingest_table_day(
        day,
        lake_root,
        table=USE_CASE.table,
        source=source,
        generate=GeneratedDays(generator or GeneratorConfig(), faults or FaultConfig()),
        landing_root=landing_root,
        sql_table=table,
        run_id=run_id,
    )


def ingest_days(days: list[dt.date], lake_root: str, **kwargs) -> list[IngestResult]:
    """A backfill: one partition per date, each replaced independently."""
    return [ingest_day(day, lake_root, **kwargs) for day in days]


def write_landing_file(
    day: dt.date,
    out_dir: str | Path,
    config: GeneratorConfig | None = None,
    fmt: str = "parquet",
    faults: FaultConfig | None = None,
) -> dict:
    """Generate ``day`` into a landing-zone file (parquet, csv, csv.gz, jsonl or jsonl.gz), as
    an IoT gateway would drop it."""
    frame = GeneratedDays(config or GeneratorConfig(), faults or FaultConfig())(day)
    return write_file(frame, out_dir, USE_CASE.table.name, day, fmt)
