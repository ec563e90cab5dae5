"""Shared helpers for the benchmark scripts: timing side by side, and test data."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable

DAY = dt.date(2026, 11, 2)


def rows_frame(rows: int):
    """About ``rows`` rows of generated telemetry for DAY (whole machine-days)."""
    from pipelines.sources.generator import GeneratorConfig, generate_day

    machines = max(1, round(rows / 1440))
    return generate_day(DAY, GeneratorConfig(machines=machines))


def interleaved(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each case, run alternately so drift on a shared machine hits all."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
