"""Shared helpers for the benchmark scripts: timing side by side, and test data."""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
import time
from collections.abc import Callable

DAY = dt.date(2026, 11, 2)


def _driver_joins_token_clusters() -> None:
    """The benchmarks' Ray heads run with token authentication (``conveyor.stack``), and a
    driver (``ray.init``) joins one only in the same mode, which Ray's core reads from the
    environment when ``ray`` is first imported: set before any benchmark imports it."""
    import os

    from conveyor.stack import ray_auth_env

    os.environ.update(ray_auth_env(dict(os.environ)))


_driver_joins_token_clusters()


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


def ingest(name: str, days: list, root: str, **fields) -> None:
    """``days`` of use case ``name``'s generated data into the lake at ``root``; ``fields`` are
    its source fields (``UseCase.source_params``, e.g. ``images`` for visual quality control)."""
    from pipelines.catalog import get_use_case
    from pipelines.data.ingest import ingest_days, source_arguments

    use_case = get_use_case(name)
    arguments = source_arguments(use_case, fields)
    ingest_days(days, root, table=use_case.table, **arguments)


def training_config(
    root: str, days: list, epochs: int, use_case: str = "predictive_maintenance", **overrides
) -> dict:
    """The train loop's config for ``days`` of ``use_case`` in the lake at ``root``, as
    ``ray_jobs.train.main`` builds it (its time split, a fitted scaler, the learner's class
    weights); predictive maintenance keeps the figures its benchmarks were first run with."""
    import pandas as pd

    from pipelines.catalog import get_use_case, learner_of
    from pipelines.data import lake
    from pipelines.ml.evaluation import TimeSplit
    from pipelines.ml.features import Scaler

    spec = get_use_case(use_case)
    learner, table = learner_of(spec), spec.table
    frame = pd.concat(
        [lake.read_partition(root, d, table=table.name) for d in days], ignore_index=True
    )
    split = TimeSplit.of(frame, table.time_column, learner.split_group)
    train = split.train(frame)
    defaults = {"batch_size": 512, "hidden": 64, "pos_weight": 10.0}
    if use_case != "predictive_maintenance":
        defaults = {
            "batch_size": spec.defaults.get("batch_size", 512),
            "hidden": learner.hidden,
            "pos_weight": learner.pos_weight(learner.targets(train)),
        }
    return {
        "use_case": use_case,
        "files": lake.partition_files(root, days, table=table.name),
        "train_until": split.train_until.isoformat(),
        "scaler": Scaler.fit(learner.features(train), learner.feature_names).as_dict(),
        "epochs": epochs,
        "lr": 3e-3,
        "seed": 0,
        **defaults,
        **overrides,
    }
