"""Landing-zone files (CSV or Parquet, gzip allowed) read into the telemetry schema."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.telemetry import SCHEMA

SUFFIXES = (".csv", ".csv.gz", ".parquet")


class SourceError(ValueError):
    """Bad input, with a one-line message naming the file and the cause."""


def _files(source: Path) -> list[Path]:
    if not source.exists():
        raise SourceError(f"{source}: source path does not exist")
    if source.is_file():
        return [source]
    found = sorted(p for p in source.iterdir() if p.name.endswith(SUFFIXES))
    if not found:
        raise SourceError(f"{source}: no {', '.join(SUFFIXES)} files in directory")
    return found


def _read_one(path: Path) -> pd.DataFrame:
    try:
        if path.name.endswith(".parquet"):
            return pd.read_parquet(path)
        if path.name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt input
        raise SourceError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    raise SourceError(f"{path}: unsupported file type (expected one of {', '.join(SUFFIXES)})")


def coerce_to_schema(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Cast to the declared dtypes; a missing column or an uncastable value is a SourceError."""
    missing = [c for c in SCHEMA if c not in frame.columns]
    if missing:
        raise SourceError(f"{origin}: missing required column(s) {', '.join(missing)}")
    out = {}
    for column, dtype in SCHEMA.items():
        try:
            if dtype.startswith("datetime64"):
                out[column] = pd.to_datetime(frame[column], utc=True).astype(dtype)
            else:
                out[column] = frame[column].astype(dtype)
        except (TypeError, ValueError) as exc:
            raise SourceError(f"{origin}: column {column} is not {dtype} ({exc})") from exc
    return pd.DataFrame(out)


def read_landing(source: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """All telemetry under ``source`` (a file or a directory), and the files it came from."""
    files = _files(Path(source))
    frames = [coerce_to_schema(_read_one(path), str(path)) for path in files]
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise SourceError(f"{source}: no rows")
    return frame, [str(path) for path in files]
