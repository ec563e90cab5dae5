"""Ingest throughput vs a bare pyarrow read + write of the same rows (target: ratio >= 0.8).

The baseline reads the landing file with pyarrow and writes one zstd Parquet file: the least
any ingestion must do. Ours is ``ingest_day`` end to end: checksum of the source, schema
conformance (types, unknown columns, duplicates), sorting, the atomic commit and the manifest.
Both run alternately in one process on the same file; the ratio is baseline time / our time.

    python bench/ingest_vs_pyarrow.py [--rows 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench._common import DAY, interleaved, rows_frame
from pipelines.usecases.predictive_maintenance.ingest import ingest_day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        frame = rows_frame(args.rows)
        landing = work / "landing"
        landing.mkdir()
        files = {
            "parquet": landing / f"telemetry-{DAY}.parquet",
            "csv": landing / f"telemetry-{DAY}.csv",
        }
        frame.to_parquet(files["parquet"], index=False)
        frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat())).to_csv(
            files["csv"], index=False
        )
        print(f"rows={len(frame)}")
        readers = {"parquet": pq.read_table, "csv": pacsv.read_csv}
        for fmt, path in files.items():

            def baseline(path=path, read=readers[fmt]):
                pq.write_table(read(path), work / "baseline.parquet", compression="zstd")

            def ours(path=path):
                ingest_day(DAY, str(work / "lake"), source=str(path), landing_root=landing)

            medians = interleaved({"pyarrow": baseline, "conveyor": ours}, args.repeats)
            ratio = medians["pyarrow"] / medians["conveyor"]
            rate = len(frame) / medians["conveyor"] / 1e6
            print(
                f"{fmt:8s} pyarrow={medians['pyarrow']:.3f}s conveyor={medians['conveyor']:.3f}s"
                f" ({rate:.2f} M rows/s) throughput ratio={ratio:.2f} (target >= 0.8)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
