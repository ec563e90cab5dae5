"""Ingestion: one day of a use case's table from a source into its lake partition.

Sources: the use case's generator (``DayGenerator``), landing-zone files under the landing
root, or a PostgreSQL table read for the day's window of the time column. Every source's rows
pass through ``pipelines.data.conform`` with the table's spec and are committed atomically;
bad input raises ``SourceError`` with one line naming the file or table and the cause, and
leaves the lake as it was. Landing files are never moved or deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from pipelines.data import lake
from pipelines.data.conform import conform
from pipelines.usecase import TableSpec, UseCase

log = logging.getLogger(__name__)

GENERATOR = "generator"


class DayGenerator(Protocol):
    """A use case's generator of one day of rows, and what the manifest records of it."""

    def __call__(self, day: dt.date): ...  # -> pandas.DataFrame

    def describe(self) -> dict: ...


@dataclass(frozen=True)
class IngestResult:
    date: str
    rows: int
    partition: str
    manifest: dict

    def as_dict(self) -> dict:
        return asdict(self)


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _from_generator(day, generate: DayGenerator | None):
    import pyarrow as pa

    if generate is None:
        raise ValueError("ingest: the generator source needs the use case's generator")
    frame = generate(day)
    return [(GENERATOR, pa.Table.from_pandas(frame, preserve_index=False))], [generate.describe()]


def _from_postgres(day, uri, sql_table, spec):
    from pipelines.data.sources.postgres import read_window, redact

    start, end = day_window(day)
    origin = f"{redact(uri)} table {sql_table}"
    rows = read_window(uri, sql_table, start, end, spec)
    return [(origin, rows)], [
        {"table": sql_table, "uri": redact(uri), "window": [str(start), str(end)]}
    ]


def _from_landing(day, source, landing_root, spec, read_landing=None):
    if read_landing is None:
        from pipelines.data.sources.files import read_landing
    if landing_root is None:
        raise ValueError("ingest: a landing-zone source needs a landing root")
    tables, files = read_landing(source, landing_root, day, spec)
    return tables, [f.as_dict() for f in files]


def ingest_day(
    day: dt.date,
    lake_root: str,
    *,
    table: TableSpec,
    source: str = GENERATOR,
    generate: DayGenerator | None = None,
    landing_root: str | Path | None = None,
    sql_table: str | None = None,
    run_id: str | None = None,
    read_landing=None,
) -> IngestResult:
    """Load ``day`` of ``table`` from ``source`` into its lake partition; return the manifest.

    ``source`` is ``"generator"`` (``generate``), a ``postgresql://`` URI (``sql_table``, by
    default the lake table's name, is read for the day's window), or a landing path (absolute,
    or relative to ``landing_root``, and inside it). Idempotent: the partition is replaced, so
    the same day and source give the same partition. ``read_landing`` reads the landing zone
    when the use case has its own reader (``UseCase.landing_reader``).
    """
    from pipelines.data.sources.postgres import is_postgres_uri

    if source == GENERATOR:
        tables, sources = _from_generator(day, generate)
    elif is_postgres_uri(source):
        tables, sources = _from_postgres(day, source, sql_table or table.name, table)
    else:
        tables, sources = _from_landing(day, source, landing_root, table, read_landing)
    rows, report = conform(tables, table)
    if report.unknown_columns:
        log.warning("ignored unknown column(s) %s", ", ".join(report.unknown_columns))
    if report.duplicates_dropped:
        log.warning("dropped %d exact duplicate row(s)", report.duplicates_dropped)
    manifest = lake.write_partition(
        rows,
        lake_root,
        day,
        sources=sources,
        source=tables[0][0] if len(tables) == 1 else f"{len(tables)} files",
        run_id=run_id,
        report=report.as_dict(),
        table_name=table.name,
    )
    partition = lake.partition_dir(lake_root, day, table.name)
    log.info("ingested date=%s rows=%d partition=%s", day, manifest.rows, partition)
    return IngestResult(day.isoformat(), manifest.rows, partition, manifest.as_dict())


def source_fields(use_case: UseCase, given: Mapping | None = None) -> dict:
    """A use case's source fields (``UseCase.source_params``): their defaults, overridden by
    ``given`` (a run's Params, CLI options); a name the use case does not declare is an
    error that lists the ones it does."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(use_case.source_params))
    if unknown:
        known = ", ".join(use_case.source_params) or "none"
        raise ValueError(
            f"use case {use_case.name} has no source field(s) {', '.join(unknown)}"
            f" (it has: {known})"
        )
    defaults = {name: schema.get("default") for name, schema in use_case.source_params.items()}
    return {**defaults, **given}


def source_arguments(use_case: UseCase, fields: Mapping | None = None) -> dict:
    """``ingest_day`` keyword arguments of a use case's source fields: its ``source_config``
    hook when it has one, else its generator as it is; and its landing reader, if any."""
    from pipelines.catalog import import_object

    out = {}
    if use_case.source_config:
        out = dict(import_object(use_case.source_config)(source_fields(use_case, fields)))
    elif use_case.generator:
        out = {"generate": import_object(use_case.generator)}
    if use_case.landing_reader:
        out["read_landing"] = import_object(use_case.landing_reader)
    return out


MAX_DAYS = 60


def days_to_ingest(
    last_day: dt.date, days: int, start: str | None = None, end: str | None = None
) -> list[dt.date]:
    """The dates a run covers: ``start``..``end`` (inclusive) when given, else the ``days``
    days ending at ``last_day``. A bad range is a one-line error naming the Params."""
    if start is None and end is None:
        return [last_day - dt.timedelta(days=i) for i in reversed(range(days))]
    if start is None or end is None:
        raise ValueError("start_date and end_date: give both, or neither to use days")
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if last < first:
        raise ValueError(f"end_date {last} is before start_date {first}")
    span = (last - first).days + 1
    if span > MAX_DAYS:
        raise ValueError(f"start_date..end_date spans {span} days; at most {MAX_DAYS}")
    return [first + dt.timedelta(days=i) for i in range(span)]


def ingest_days(days: list[dt.date], lake_root: str, **kwargs) -> list[IngestResult]:
    """A backfill: one partition per date, each replaced independently."""
    return [ingest_day(day, lake_root, **kwargs) for day in days]
