"""Landing-zone files, as IoT gateways drop them: CSV, JSON Lines or Parquet, gzip allowed.

A day's files are found under the landing root by name: every file whose path below the root
contains the date (``readings-2026-11-01.csv.gz``, ``date=2026-11-01/part-3.jsonl``). A source
may also name one file or directory explicitly; either way it must stay inside the landing root
(no ``..``, no symlink out). Landing files are only read, never moved or deleted.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from pipelines.data.conform import SourceError, arrow_schema
from pipelines.usecase import TableSpec

FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson": "jsonl",
    ".ndjson.gz": "jsonl",
    ".parquet": "parquet",
}


@dataclass(frozen=True)
class SourceFile:
    path: str
    sha256: str
    bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def _format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def resolve_in_landing(source: str | Path, landing_root: str | Path) -> Path:
    """``source`` (absolute, or relative to the landing root) as a path inside the root."""
    root = Path(landing_root).resolve()
    candidate = Path(source)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if path != root and root not in path.parents:
        raise SourceError(f"{source}: path escapes the landing root {root}")
    if not path.exists():
        raise SourceError(f"{source}: source path does not exist")
    return path


def day_files(source: Path, day: dt.date) -> list[Path]:
    """The files of ``day``: ``source`` itself if it is a file, else the dated files below it."""
    if source.is_file():
        if _format(source) is None:
            raise SourceError(f"{source}: unsupported file type (expected {', '.join(FORMATS)})")
        return [source]
    stamp = day.isoformat()
    found = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and _format(p) and stamp in str(p.relative_to(source))
    )
    if not found:
        raise SourceError(f"{source}: no {', '.join(FORMATS)} files for {stamp}")
    for path in found:  # a symlinked file must not lead out of the landing zone either
        if source.resolve() not in path.resolve().parents:
            raise SourceError(f"{path}: path escapes the landing root {source}")
    return found


def _csv_types(header: list[str], schema: pa.Schema) -> dict:
    """The table's declared types for its columns in the header (no other table's); the
    timestamp type has a zone, so Arrow rejects a timestamp without an offset instead of
    guessing one."""
    return {f.name: f.type for f in schema if f.name in header}


def _read_csv(path: Path, raw: pa.Buffer, schema: pa.Schema) -> pa.Table:
    head = raw.slice(0, min(raw.size, 1 << 16)).to_pybytes()
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    if "," not in first:
        sep = next((s for s in (";", "\t", "|") if s in first), None)
        hint = f" (found {sep!r}: wrong delimiter?)" if sep else ""
        raise SourceError(f"{path}: header has no comma-separated columns{hint}")
    header = first.strip().split(",")
    options = pacsv.ConvertOptions(
        column_types=_csv_types(header, schema), strings_can_be_null=False
    )
    try:
        return pacsv.read_csv(pa.BufferReader(raw), convert_options=options)
    except pa.ArrowInvalid as exc:
        # Arrow names columns by index; say which column it is.
        message = str(exc).strip().splitlines()[0]
        if "UTF8" in message:
            raise SourceError(f"{path}: not UTF-8 text (wrong encoding?): {message}") from exc
        found = re.search(r"column #(\d+)", message)
        if found and int(found.group(1)) < len(header):
            message = message.replace(found.group(0), f"column {header[int(found.group(1))]}")
        raise SourceError(f"{path}: {message}") from exc


def _read_jsonl(path: Path, raw: pa.Buffer, schema: pa.Schema) -> pa.Table:
    try:  # Arrow's JSON reader does not check the encoding; the CSV reader does
        str(memoryview(raw), "utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text (byte {exc.start}: wrong encoding?)") from exc
    # Timestamps stay strings here: conform parses them, and refuses one without a zone.
    stamps = [(f.name, pa.string()) for f in schema if pa.types.is_timestamp(f.type)]
    options = pajson.ParseOptions(
        explicit_schema=pa.schema(stamps), unexpected_field_behavior="infer"
    )
    return pajson.read_json(pa.BufferReader(raw), parse_options=options)


def _read_parquet(path: Path, raw: pa.Buffer, schema: pa.Schema) -> pa.Table:
    return pq.read_table(pa.BufferReader(raw))


READERS = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}


def read_file(path: Path, schema: pa.Schema) -> tuple[pa.Table, SourceFile]:
    """One landing file of a table with ``schema`` as an Arrow table, with its checksum for
    the manifest."""
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty")
    # Memory-mapped: the checksum and the parser read the page cache, with no copy.
    data = pa.memory_map(str(path)).read_buffer()
    raw = data
    if path.name.lower().endswith(".gz"):
        try:
            raw = pa.py_buffer(gzip.decompress(memoryview(data)))
        except (OSError, EOFError) as exc:
            raise SourceError(f"{path}: corrupt or truncated gzip ({exc})") from exc
    fmt = _format(path)
    # Hash while Arrow parses: both release the GIL, so the checksum costs no wall time.
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(lambda: hashlib.sha256(memoryview(data)).hexdigest())
        table = _parse(path, fmt, raw, schema)
        meta = SourceFile(str(path), digest.result(), data.size)
    return table, meta


def _parse(path: Path, fmt: str, raw: pa.Buffer, schema: pa.Schema) -> pa.Table:
    try:
        return READERS[fmt](path, raw, schema)
    except SourceError:
        raise
    except (pa.ArrowException, ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "utf8" in message.lower() or "utf-8" in message.lower():
            raise SourceError(f"{path}: not UTF-8 text (wrong encoding?): {message}") from exc
        raise SourceError(f"{path}: unreadable {fmt} ({message})") from exc


def read_landing(source: str | Path, landing_root: str | Path, day: dt.date, spec: TableSpec):
    """The day's tables of ``spec`` under ``source`` as (origin, table) pairs, and the files
    they came from."""
    files = day_files(resolve_in_landing(source, landing_root), day)
    schema = arrow_schema(spec)
    tables, metas = [], []
    for path in files:
        table, meta = read_file(path, schema)
        tables.append((str(path), table))
        metas.append(meta)
    return tables, metas


WRITABLE = ("parquet", "csv", "csv.gz", "jsonl", "jsonl.gz")


def write_landing_file(frame, out_dir: str | Path, stem: str, day: dt.date, fmt: str) -> dict:
    """``frame`` as one landing-zone file ``<out_dir>/<stem>-<day>.<fmt>``, as a gateway would
    drop it (timestamps as ISO 8601 text in CSV and JSON Lines); written whole or not at all."""
    import os

    if fmt not in WRITABLE:
        raise ValueError(f"landing format must be one of {', '.join(WRITABLE)}: {fmt}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}-{day.isoformat()}.{fmt}"
    partial = path.with_name(f".{path.name}.partial")
    compression = "gzip" if fmt.endswith(".gz") else None
    if fmt == "parquet":
        frame.to_parquet(partial, index=False)
    else:
        times = frame.select_dtypes(include=["datetime", "datetimetz"]).columns
        text = frame.assign(**{c: frame[c].map(lambda t: t.isoformat()) for c in times})
        if fmt.startswith("csv"):
            text.to_csv(partial, index=False, compression=compression)
        else:
            text.to_json(partial, orient="records", lines=True, compression=compression)
    os.replace(partial, path)
    return {"date": day.isoformat(), "rows": len(frame), "path": str(path)}
