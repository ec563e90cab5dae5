"""Ingestion: one day of telemetry from a source into its lake partition."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines import lake
from pipelines.sources.generator import GeneratorConfig, generate_day

log = logging.getLogger(__name__)

GENERATOR = "generator"


@dataclass(frozen=True)
class IngestResult:
    date: str
    rows: int
    partition: str
    manifest: dict

    def as_dict(self) -> dict:
        return asdict(self)


def ingest_day(
    day: dt.date,
    lake_root: str,
    *,
    source: str = GENERATOR,
    generator: GeneratorConfig | None = None,
    run_id: str | None = None,
) -> IngestResult:
    """Load ``day`` from ``source`` ("generator" or a landing path) into its lake partition.

    Idempotent: the partition is replaced, so running it again for the same day and source
    yields the same partition (same rows, same checksum).
    """
    if source == GENERATOR:
        frame = generate_day(day, generator)
        origin = f"generator:{asdict(generator or GeneratorConfig())}"
    else:
        from pipelines.sources.files import read_landing

        frame, files = read_landing(source)
        origin = ",".join(files)
    manifest = lake.write_partition(frame, lake_root, day, source=origin, run_id=run_id)
    partition = str(lake.partition_dir(lake_root, day))
    log.info("ingested rows=%d partition=%s", manifest.rows, partition)
    return IngestResult(day.isoformat(), manifest.rows, partition, manifest.as_dict())


def ingest_days(days: list[dt.date], lake_root: str, **kwargs) -> list[IngestResult]:
    return [ingest_day(day, lake_root, **kwargs) for day in days]


def write_landing_file(day: dt.date, out_dir: str | Path, config: GeneratorConfig | None = None):
    """Generate ``day`` into a landing-zone Parquet file, as an IoT gateway would drop it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"telemetry-{day.isoformat()}.parquet"
    frame = generate_day(day, config)
    frame.to_parquet(path, index=False)
    return {"date": day.isoformat(), "rows": len(frame), "path": str(path)}
