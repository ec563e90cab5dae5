"""The training driver's memory does not grow with the data (real Ray cluster, real job).

The same training job runs on a small lake and on one with about a hundred times the rows;
the driver's peak resident memory (the job reports its own ``VmHWM``) may exceed the
small run's only by ``ALLOWANCE``, the cap this test sets: batches, bounded baseline samples
and the metrics' columns. The collect-to-driver path it replaced held every row and fails
here (docs/perf-log.md).

A cap by ``setrlimit`` on the driver is not usable: Ray and PyTorch reserve gigabytes of
address space they never touch, so RLIMIT_AS kills a healthy driver; the peak RSS is the
figure a container's memory limit acts on.
"""

import datetime as dt
import json
import time

import pytest

from conveyor.processes import wait_until
from conveyor_provider.hooks.ray_jobs import RayJobsHook
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_days

pytestmark = pytest.mark.integration

MB = 1024**2
ALLOWANCE = 270 * MB


def _lake(root, days: int, machines: int) -> tuple[str, str]:
    dates = [dt.date(2026, 11, 1) + dt.timedelta(days=d) for d in range(days)]
    ingest_days(dates, str(root), generator=GeneratorConfig(machines=machines, minutes=1440))
    return str(root), ",".join(d.isoformat() for d in dates)


def _train(hook, lake: str, dates: str, tmp_path, name: str, *extra: str) -> dict:
    from conveyor_provider.operators.ray_job import DEFAULT_EXCLUDES, PROJECT_ROOT

    sid, result = f"{name}-{time.time_ns()}", tmp_path / f"{name}.json"
    entrypoint = (
        f"python -m ray_jobs.train --use-case predictive_maintenance --lake {lake}"
        f" --dates {dates} --storage-path {tmp_path / 'runs'} --name {name} --epochs 1"
        f" --num-workers 2 --use-gpu false --batch-size 4096 {' '.join(extra)}"
    )
    env = {"CONVEYOR_RESULT_PATH": str(result)}
    runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": DEFAULT_EXCLUDES, "env_vars": env}
    hook.submit(sid, entrypoint, runtime_env=runtime_env)
    done = ("SUCCEEDED", "FAILED", "STOPPED")
    wait_until(lambda: hook.job_status(sid) in done, sid, 900)
    assert hook.job_status(sid) == "SUCCEEDED", hook.logs(sid)[-3000:]
    return json.loads(result.read_text())


def test_the_drivers_memory_stays_flat_as_the_data_grows_a_hundredfold(ray_head, tmp_path):
    hook = RayJobsHook(address=ray_head.ray_jobs_address)
    small = _train(hook, *_lake(tmp_path / "small", 1, 8), tmp_path, "small")
    # The large run's workers stream their shards every epoch (a 1 MB cache), the path a
    # shard beyond --worker-cache-mb takes; the small run's keep theirs.
    large = _train(
        hook, *_lake(tmp_path / "large", 7, 100), tmp_path, "large", "--worker-cache-mb 1"
    )
    rows = [r["history"][0]["rows"] for r in (small, large)]
    assert rows[1] > 80 * rows[0]  # the data did grow
    peaks = [r["phases"]["driver_peak_rss_bytes"] for r in (small, large)]
    grown = peaks[1] - peaks[0]
    assert grown <= ALLOWANCE, (
        f"driver peak {peaks[0] / MB:.0f} MB -> {peaks[1] / MB:.0f} MB with {rows[1]:,}"
        f" training rows: +{grown / MB:.0f} MB > the {ALLOWANCE / MB:.0f} MB allowance"
    )
    assert 0.0 < large["metrics"]["f1"] <= 1.0 and large["metrics"]["rows"] > 0
