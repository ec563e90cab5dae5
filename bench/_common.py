"""Shared helpers for the benchmark scripts: timing side by side, and test data."""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
import time
from collections.abc import Callable

DAY = dt.date(2026, 11, 2)


def rows_frame(rows: int):
    """About ``rows`` rows of generated telemetry for DAY (whole machine-days)."""
    from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig, generate_day

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


@contextlib.contextmanager
def local_ray(work):
    """A Ray head of our own (``ray start --head`` on free ports, 4 logical CPUs), connected;
    stopped by PID afterwards."""
    import os

    import ray

    from conveyor.processes import free_port, stop
    from conveyor.stack import start_ray
    from pipelines.settings import ConveyorSettings

    ports = ("GCS", "DASHBOARD", "CLIENT", "DASHBOARD_AGENT")
    os.environ.update({f"CONVEYOR_RAY_{p}_PORT": str(free_port()) for p in ports})
    os.environ.update(CONVEYOR_HOME=str(work), CONVEYOR_RAY_NUM_CPUS="4")
    settings = ConveyorSettings()
    head = start_ray(settings)
    try:
        ray.init(address=f"{settings.host}:{settings.ray_gcs_port}", log_to_driver=False)
        yield settings
    finally:
        ray.shutdown()
        stop(head)


def training_config(root: str, days: list, epochs: int, **overrides) -> dict:
    """The train loop's config for ``days`` of the lake at ``root`` (time split, fitted scaler)."""
    import pandas as pd

    from pipelines.data import lake
    from pipelines.ml.evaluation import TimeSplit
    from pipelines.ml.features import Scaler
    from pipelines.usecases.predictive_maintenance.learner import LEARNER

    frame = pd.concat(
        [lake.read_partition(root, d, table="telemetry") for d in days], ignore_index=True
    )
    split = TimeSplit.of(frame, "timestamp")
    return {
        "use_case": "predictive_maintenance",
        "files": lake.partition_files(root, days, table="telemetry"),
        "train_until": split.train_until.isoformat(),
        "scaler": Scaler.fit(LEARNER.features(split.train(frame)), LEARNER.feature_names).as_dict(),
        "epochs": epochs,
        "batch_size": 512,
        "lr": 3e-3,
        "hidden": 64,
        "seed": 0,
        "pos_weight": 10.0,
        **overrides,
    }
