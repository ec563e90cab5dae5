"""The telemetry lake: one Parquet file plus a manifest per day, hive-style partitioned.

Layout: ``<root>/telemetry/date=YYYY-MM-DD/{part-0.parquet,_manifest.json}``.
Each file is written under a temporary name in the same directory and committed with
``os.replace``, which is atomic on POSIX: a reader (or a killed writer) never sees half a file,
and writing a date again replaces it instead of appending to it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TABLE = "telemetry"
DATA_FILE = "part-0.parquet"
MANIFEST_FILE = "_manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What a partition holds and where it came from: the start of the lineage chain."""

    date: str
    rows: int
    schema: dict[str, str]
    sha256: str
    source: str
    run_id: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def partition_dir(root: str | os.PathLike, day: dt.date, table: str = TABLE) -> Path:
    return Path(root) / table / f"date={day.isoformat()}"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_partition(
    frame: pd.DataFrame,
    root: str | os.PathLike,
    day: dt.date,
    *,
    source: str,
    run_id: str | None = None,
) -> Manifest:
    """Replace the partition of ``day`` with ``frame`` and return its manifest."""
    target = partition_dir(root, day)
    target.mkdir(parents=True, exist_ok=True)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    payload = sink.getvalue().to_pybytes()
    manifest = Manifest(
        date=day.isoformat(),
        rows=len(frame),
        schema={column: str(dtype) for column, dtype in frame.dtypes.items()},
        sha256=hashlib.sha256(payload).hexdigest(),
        source=source,
        run_id=run_id,
    )
    # Data first, manifest last: a manifest always describes the data file beside it.
    (target / MANIFEST_FILE).unlink(missing_ok=True)
    _atomic_write_bytes(target / DATA_FILE, payload)
    _atomic_write_bytes(target / MANIFEST_FILE, json.dumps(manifest.as_dict(), indent=2).encode())
    return manifest


def read_manifest(root: str | os.PathLike, day: dt.date) -> Manifest:
    path = partition_dir(root, day) / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"lake: no committed partition for {day} (missing {path})")
    return Manifest(**json.loads(path.read_text()))


def read_partition(root: str | os.PathLike, day: dt.date) -> pd.DataFrame:
    read_manifest(root, day)  # only committed partitions are readable
    return pd.read_parquet(partition_dir(root, day) / DATA_FILE)


def committed_dates(root: str | os.PathLike) -> list[dt.date]:
    """Every date with a committed (manifest-bearing) partition, oldest first."""
    base = Path(root) / TABLE
    if not base.exists():
        return []
    dates = [
        dt.date.fromisoformat(child.name.removeprefix("date="))
        for child in base.glob("date=*")
        if (child / MANIFEST_FILE).exists()
    ]
    return sorted(dates)


def partition_files(root: str | os.PathLike, days: list[dt.date]) -> list[str]:
    return [str(partition_dir(root, day) / DATA_FILE) for day in days]
