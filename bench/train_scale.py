"""Training as the data grows: the same job at 1x, 4x and 16x the rows, side by side.

Each size is predictive maintenance over the same days with more machines (50, 200, 800 by
default: 0.5, 2.0 and 8.1 million rows for 7 days), generated into a lake of its own, then
trained by ``python -m ray_jobs.train`` (the Ray Jobs entrypoint, as the driver process) on a
fresh Ray head, one epoch, 2 CPU workers. Per size it prints the driver's and the largest
training worker's peak RSS (as the job reports them; a worker's also without the object
store's shared pages it maps, its private memory), the object store's spilled bytes, the
job's wall time and rows/s, the epoch's time, and the share of the job spent outside the
training loop (split, statistics, evaluation, baseline; with several epochs also the read into
the object store, which one epoch streams into the loop). Then the ratios against 1x:
targets are driver and worker peaks at 16x <= 1.3x the 1x figure and the share outside the
loop <= 25% at 16x. Prints; not a test.

    python -m bench.train_scale [--machines 50,200,800] [--days 7] [--epochs 1]
        [--evaluate-on driver,cluster]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import ingest, local_ray

GB = 1024**3


def run_size(
    work: Path, machines: int, days: list[dt.date], epochs: int, evaluate_on: str = "auto"
) -> dict:
    lake = work / f"lake-{machines}"
    if not lake.exists():
        ingest("predictive_maintenance", days, str(lake), machines=machines)
    with local_ray(work / f"ray-{machines}-{evaluate_on}") as settings:
        result_path = work / f"result-{machines}-{evaluate_on}.json"
        argv = [
            sys.executable,
            "-m",
            "ray_jobs.train",
            "--use-case=predictive_maintenance",
            f"--lake={lake}",
            f"--dates={','.join(d.isoformat() for d in days)}",
            f"--storage-path={work / 'runs'}",
            f"--name=scale-{machines}-{evaluate_on}",
            f"--evaluate-on={evaluate_on}",
            f"--epochs={epochs}",
            "--num-workers=2",
            "--use-gpu=false",
            "--batch-size=2048",
        ]
        env = {
            **os.environ,
            "RAY_ADDRESS": f"{settings.host}:{settings.ray_gcs_port}",
            "CONVEYOR_RESULT_PATH": str(result_path),
        }
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - started
        spilled = _spilled_bytes(f"{settings.host}:{settings.ray_gcs_port}")
    result = json.loads(result_path.read_text())
    phases, history = result["phases"], result["history"]
    rows = sum(_partition_rows(lake, d) for d in days)
    # prepare_seconds holds the split, the statistics and, with several epochs, the read into
    # the object store (the last two at once; their own durations are in the phases too).
    outside = sum(
        phases.get(k, 0.0) for k in ("prepare_seconds", "evaluate_seconds", "baseline_seconds")
    )
    return {
        "evaluated_on": result["params"]["evaluated_on"],
        "machines": machines,
        "rows": rows,
        "driver_peak": phases["driver_peak_rss_bytes"],
        "worker_peak": max(h["worker_peak_rss_bytes"] for h in history),
        "worker_private": max(h["worker_peak_private_bytes"] for h in history),
        "spilled": spilled,
        "wall": wall,
        "epoch": sum(h["epoch_seconds"] for h in history) / len(history),
        "rows_per_s": rows * epochs / wall,
        "outside": outside,
        "phases": phases,
    }


def _partition_rows(lake: Path, day: dt.date) -> int:
    manifest = lake / "telemetry" / f"date={day.isoformat()}" / "_manifest.json"
    return json.loads(manifest.read_text())["rows"]


def _spilled_bytes(address: str) -> int | None:
    """Bytes the object store spilled to disk, from Ray's memory summary (None if unknown)."""
    try:
        from ray._private.internal_api import memory_summary

        summary = memory_summary(address, stats_only=True)
    except Exception:
        return None
    match = re.search(r"Spilled (\d+) MiB", summary)
    return int(match.group(1)) * 1024**2 if match else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", default="50,200,800")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--evaluate-on",
        default="auto",
        help="comma-separated ray_jobs.train --evaluate-on values; the largest size runs with"
        " each, side by side (e.g. driver,cluster)",
    )
    args = parser.parse_args(argv)
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=d) for d in range(args.days)]
    sizes = [int(m) for m in args.machines.split(",")]
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-scale-") as tmp:
        modes = args.evaluate_on.split(",")
        runs = [run_size(Path(tmp), m, days, args.epochs, modes[0]) for m in sizes]
        extra = [run_size(Path(tmp), sizes[-1], days, args.epochs, m) for m in modes[1:]]
    base = runs[0]
    print(
        f"{'machines':>8} {'rows':>10} {'driver GB':>9} {'worker GB':>9} {'private':>7}"
        f" {'spilled MB':>10}"
        f" {'wall s':>7} {'epoch s':>7} {'rows/s':>9} {'outside':>7}"
    )
    for run in runs:
        spilled = "n/a" if run["spilled"] is None else f"{run['spilled'] / 1024**2:.0f}"
        print(
            f"{run['machines']:>8} {run['rows']:>10,} {run['driver_peak'] / GB:>9.2f}"
            f" {run['worker_peak'] / GB:>9.2f} {run['worker_private'] / GB:>7.2f} {spilled:>10}"
            f" {run['wall']:>7.1f}"
            f" {run['epoch']:>7.1f} {run['rows_per_s']:>9,.0f} {run['outside'] / run['wall']:>7.0%}"
        )
    for run in runs[1:]:
        scale = run["rows"] / base["rows"]
        print(
            f"{scale:.0f}x data: driver peak {run['driver_peak'] / base['driver_peak']:.2f}x,"
            f" worker peak {run['worker_peak'] / base['worker_peak']:.2f}x of 1x (target <= 1.3),"
            f" its private memory {run['worker_private'] / base['worker_private']:.2f}x;"
            f" outside the training loop {run['outside'] / run['wall']:.0%} of the job"
            " (target <= 25% at 16x)"
        )
    for run in [runs[-1], *extra] if extra else []:
        print(
            f"at {run['machines']} machines, evaluated on the {run['evaluated_on']}:"
            f" evaluation {run['phases']['evaluate_seconds']:.1f} s, job {run['wall']:.1f} s,"
            f" driver peak {run['driver_peak'] / GB:.2f} GB"
        )
    for run in [*runs, *extra]:
        phases = run["phases"]
        seconds = {k[:-8]: round(v, 1) for k, v in phases.items() if k.endswith("_seconds")}
        peaks = {
            k[:-15]: round(v / GB, 2) for k, v in phases.items() if k.endswith("_peak_rss_bytes")
        }
        print(
            f"at {run['machines']} machines ({run['evaluated_on']}): seconds {seconds};"
            f" driver peak GB after {peaks}"
        )


if __name__ == "__main__":
    main()
