"""The lake: Parquet, hive-style partitions, one manifest per partition, one folder per table
(a use case's ``TableSpec.name``).

Layout: ``<root>/<table>/date=YYYY-MM-DD/{part-<id>.parquet,_manifest.json}``. The root is a
local path or any fsspec URL (``s3://bucket/lake`` when credentials are set).

Commit protocol (the same on a local disk and on an object store):

1. the data goes to a new file with a unique name, which no reader looks at yet;
2. the manifest, which names that file and its checksum, is written atomically (a local
   ``os.replace``, or a single object PUT): this is the commit;
3. data files the manifest does not name (read again: another writer may have committed
   since) are removed.

A writer killed at any point leaves either the previous partition or the new one, never half
of one, and ingesting a date again replaces it. Readers read only the file a manifest names.
Two runs may ingest the same date at once (the daily DAG and an all-in-one run): on a local
disk writers of one partition take turns (a lock file under ``<root>/_locks``), and the last
commit wins; a reader whose file was replaced between reading the manifest and opening the
file reads the new manifest again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.locks import exclusive

MANIFEST_FILE = "_manifest.json"
QUARANTINE = "_quarantine"


@dataclass(frozen=True)
class Manifest:
    """What a partition holds and where it came from: the start of the lineage chain."""

    date: str
    rows: int
    schema: dict[str, str]
    data_file: str
    sha256: str
    sources: list[dict] = field(default_factory=list)
    """Each source file (path, sha256, bytes), table or generator config."""
    source: str = ""
    ingested_at: str = ""
    run_id: str | None = None
    report: dict = field(default_factory=dict)
    """What conforming the rows did: rows read, duplicates dropped, unknown columns."""

    def as_dict(self) -> dict:
        return asdict(self)


def _fs(root: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(str(root))
    return fs, path.rstrip("/")


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def partition_dir(root: str | os.PathLike, day: dt.date, table: str) -> str:
    """The partition's location, in the root's own form (a path, or a URL for object stores)."""
    base = str(root).rstrip("/")
    return f"{base}/{table}/date={day.isoformat()}"


def _put(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` so that readers see all of it or nothing."""
    if not _is_local(fs):
        fs.pipe_file(path, data)  # one object PUT is atomic
        return
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


ROW_GROUP_ROWS = 65_536
"""Rows per Parquet row group: a reader that streams a partition (training's driver, Ray
Data) decodes one row group at a time, so this, not a day's rows, bounds what it holds."""


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue().to_pybytes()


def write_partition(
    table: pa.Table,
    root: str | os.PathLike,
    day: dt.date,
    *,
    sources: list[dict] | None = None,
    source: str = "",
    run_id: str | None = None,
    report: dict | None = None,
    table_name: str,
) -> Manifest:
    """Replace the partition of ``day`` of lake table ``table_name`` with ``table`` (an Arrow
    table) and return its manifest."""
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    fs, _ = _fs(root)
    target = _fs(partition_dir(root, day, table_name))[1]
    fs.makedirs(target, exist_ok=True)
    payload = table_bytes(table)
    sha = hashlib.sha256(payload).hexdigest()
    data_file = f"part-{sha[:16]}.parquet"  # same rows, same name: a re-ingest is a no-op
    manifest = Manifest(
        date=day.isoformat(),
        rows=table.num_rows,
        schema={f.name: str(f.type) for f in table.schema},
        data_file=data_file,
        sha256=sha,
        sources=sources or [],
        source=source,
        ingested_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        run_id=run_id,
        report=report or {},
    )
    with _writers_take_turns(fs, target):
        _put(fs, f"{target}/{data_file}", payload)
        _put(fs, f"{target}/{MANIFEST_FILE}", json.dumps(manifest.as_dict(), indent=2).encode())
        committed = json.loads(fs.cat_file(f"{target}/{MANIFEST_FILE}"))["data_file"]
        for stale in fs.ls(target, detail=False):
            name = stale.rstrip("/").rsplit("/", 1)[-1]
            if (name.startswith("part-") and name != committed) or name.endswith(".tmp"):
                fs.rm(stale)  # an older version, or what a killed writer left
    return manifest


@contextlib.contextmanager
def _writers_take_turns(fs: fsspec.AbstractFileSystem, target: str):
    """One writer at a time per partition on a local disk (``flock`` on
    ``<root>/_locks/<table>/date=….lock``, outside the table so listings see only partitions;
    released if the writer dies). Object stores have no such lock: there the last commit wins
    and, in a narrow window, a concurrent writer's cleanup can remove the file the winner
    names; schedule one writer per date there."""
    if not _is_local(fs):
        yield
        return
    root, table, name = target.rsplit("/", 2)
    with exclusive(f"{root}/_locks/{table}/{name}.lock"):
        yield


def read_manifest(root: str | os.PathLike, day: dt.date, table: str) -> Manifest:
    fs, _ = _fs(root)
    path = f"{_fs(partition_dir(root, day, table))[1]}/{MANIFEST_FILE}"
    if not fs.exists(path):
        raise FileNotFoundError(f"lake: no committed partition for {day} (missing {path})")
    return Manifest(**json.loads(fs.cat_file(path)))


def data_path(root: str | os.PathLike, day: dt.date, table: str) -> str:
    """The committed data file of ``day`` (in the root's own form)."""
    return f"{partition_dir(root, day, table)}/{read_manifest(root, day, table).data_file}"


def read_committed(
    root: str | os.PathLike, day: dt.date, table: str, *, skip_binary: bool = False
) -> tuple[pa.Table, Manifest]:
    """The committed partition of ``day`` and the manifest of the very file that was read
    (its ``sha256`` identifies the rows, e.g. in a validation result). ``skip_binary`` leaves
    binary columns (image bytes) unread: metadata checks never pay for the payloads."""
    for attempt in range(3):
        manifest = read_manifest(root, day, table)
        fs, path = _fs(f"{partition_dir(root, day, table)}/{manifest.data_file}")
        try:
            with fs.open(path, "rb") as handle:
                data = pq.ParquetFile(handle)
                columns = None
                if skip_binary:
                    columns = [
                        f.name
                        for f in data.schema_arrow
                        if not (pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type))
                    ]
                return data.read(columns=columns), manifest
        except FileNotFoundError:
            if attempt == 2:
                raise
            # A writer committed a new version, and removed this one, since we read the
            # manifest: read it again.


def read_table(root: str | os.PathLike, day: dt.date, table: str) -> pa.Table:
    return read_committed(root, day, table)[0]


def read_partition(root: str | os.PathLike, day: dt.date, table: str, *, skip_binary=False):
    """The committed partition of ``day`` as a pandas DataFrame."""
    return read_committed(root, day, table, skip_binary=skip_binary)[0].to_pandas()


def committed_dates(root: str | os.PathLike, table: str) -> list[dt.date]:
    """Every date with a committed (manifest-bearing) partition, oldest first."""
    fs, base = _fs(root)
    manifests = fs.glob(f"{base}/{table}/date=*/{MANIFEST_FILE}")
    dates = [dt.date.fromisoformat(m.split("date=")[-1].split("/")[0]) for m in manifests]
    return sorted(dates)


def week_partitions(root: str | os.PathLike, week_key: str, table: str) -> list[str]:
    """The seven committed days (YYYY-MM-DD) of the ISO week starting on ``week_key``'s
    Monday (``2026-11-23`` or ``2026-11-23 (W48)``); a one-line error when a day is missing."""
    try:
        monday = dt.date.fromisoformat(str(week_key)[:10])
    except ValueError:
        raise ValueError(f"week {week_key!r}: not a YYYY-MM-DD week start") from None
    if monday.weekday() != 0:
        raise ValueError(f"week {week_key!r}: {monday} is not a Monday")
    days = [monday + dt.timedelta(days=i) for i in range(7)]
    missing = sorted(set(days) - set(committed_dates(root, table)))
    if missing:
        raise ValueError(
            f"week {week_key!r}: no committed partition for {', '.join(map(str, missing))}"
        )
    return [d.isoformat() for d in days]


def append_part(folder: str, table: pa.Table, name: str) -> str:
    """Add ``table`` to an append-only lake folder (served traffic) as one more data file,
    ``<folder>/part-<name>.parquet``, written so that a reader lists all of it or nothing (a
    hidden temporary file renamed into place, or one object PUT). Readers of such folders
    read every ``part-*.parquet`` file; there is no manifest, since nothing is ever replaced."""
    fs, target = _fs(folder)
    fs.makedirs(target, exist_ok=True)
    path = f"{target}/part-{name}.parquet"
    _put(fs, path, table_bytes(table))
    return path


def partition_files(root: str | os.PathLike, days: list[dt.date], table: str) -> list[str]:
    return [data_path(root, day, table) for day in days]


def quarantine_partition(
    root: str | os.PathLike,
    day: dt.date,
    attachments: dict[str, bytes],
    run_id: str | None,
    table: str,
) -> str:
    """Move the partition of ``day`` out of the lake into ``<root>/_quarantine/...``.

    Copies first (data, manifest and ``attachments`` such as the validation result), then
    uncommits the partition by removing its manifest, then its data file: at no point is the
    data in neither place. Returns the quarantine location.
    """
    fs, _ = _fs(root)
    source = _fs(partition_dir(root, day, table))[1]
    manifest = read_manifest(root, day, table)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    label = f"{stamp}-{run_id}" if run_id else stamp
    where = partition_dir(f"{str(root).rstrip('/')}/{QUARANTINE}", day, table)
    where += f"/{_safe(label)}"
    dest = _fs(where)[1]
    fs.makedirs(dest, exist_ok=True)
    _put(fs, f"{dest}/{manifest.data_file}", fs.cat_file(f"{source}/{manifest.data_file}"))
    for name, payload in attachments.items():
        _put(fs, f"{dest}/{name}", payload)
    _put(fs, f"{dest}/{MANIFEST_FILE}", fs.cat_file(f"{source}/{MANIFEST_FILE}"))
    fs.rm(f"{source}/{MANIFEST_FILE}")
    fs.rm(f"{source}/{manifest.data_file}")
    return where


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "-" for c in label)
