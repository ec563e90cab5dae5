"""When the statistics pass fails, the training job fails with its error, not Ray Train's.

The statistics (scaler, class weights, baseline sample) run in a Ray task of their own while
the trainer starts its workers, who wait for them; a worker that finds the task failed fails
its group, and Ray Train raises a WorkerGroupError around a snippet of the worker's log. The
driver asks the task for its result first, so the job's last error is the task's own. Real
Ray job on the session's Ray head; the fault is a real one: a training partition whose torque
pages are corrupt on disk (its footer and time column intact, so the split and Ray Data's
planning pass), which the statistics decode before any worker reads a row.
"""

import datetime as dt
import re
import time

import pyarrow.parquet as pq
import pytest

from conveyor.processes import wait_until
from conveyor_provider.hooks.ray_jobs import RayJobsHook
from pipelines.catalog import get_use_case
from pipelines.data import lake
from pipelines.data.ingest import ingest_days, source_arguments

pytestmark = pytest.mark.integration

DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=d) for d in range(3)]
BROKEN = "torque_nm"
RAISED = re.compile(r"^ray\.[\w.]+(\(\w+\))?: ")
"""The line an exception raised by Ray starts its message with, e.g.
``ray.exceptions.RayTaskError(OSError): ray::run_statistics() ...``."""
FORWARDED = re.compile(r"^\s*(\x1b\[[0-9;]*m)?\(\w+ pid=")


def test_a_failed_statistics_pass_is_the_error_the_job_reports(ray_head, tmp_path):
    from conveyor_provider.operators.ray_job import DEFAULT_EXCLUDES, PROJECT_ROOT

    use_case = get_use_case("predictive_maintenance")
    root = str(tmp_path / "lake")
    ingest_days(DAYS, root, table=use_case.table, **source_arguments(use_case, {"machines": 4}))
    # The first day is training data: overwrite its torque column's pages with noise.
    for path in lake.partition_files(root, DAYS[:1], use_case.table.name):
        metadata = pq.ParquetFile(path).metadata
        index = metadata.schema.to_arrow_schema().get_field_index(BROKEN)
        with open(path, "r+b") as file:
            for group in range(metadata.num_row_groups):
                chunk = metadata.row_group(group).column(index)
                start = chunk.dictionary_page_offset or chunk.data_page_offset
                file.seek(start + chunk.total_compressed_size // 4)
                file.write(b"\xff" * (chunk.total_compressed_size // 2))

    hook = RayJobsHook(address=ray_head.ray_jobs_address)
    sid = f"statistics-fail-{time.time_ns()}"
    entrypoint = (
        f"python -m ray_jobs.train --use-case predictive_maintenance --lake {root}"
        f" --dates {','.join(d.isoformat() for d in DAYS)}"
        f" --storage-path {tmp_path / 'runs'} --name {sid} --epochs 1 --num-workers 1"
        " --use-gpu false --max-failures 0"
    )
    runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": DEFAULT_EXCLUDES}
    hook.submit(sid, entrypoint, runtime_env=runtime_env)
    wait_until(lambda: hook.job_status(sid) in ("SUCCEEDED", "FAILED", "STOPPED"), sid, 600)
    logs = hook.logs(sid)
    assert hook.job_status(sid) == "FAILED", logs[-3000:]
    # The driver's own last error (not the worker lines Ray forwards, "(Name pid=...) ...") is
    # the statistics task's, and says what is wrong: not Ray Train's WorkerGroupError, which
    # says only that a worker failed.
    driver = [line for line in logs.splitlines() if line.strip() and not FORWARDED.match(line)]
    raised = [line for line in driver if RAISED.match(line)]
    tail = "\n".join(driver[-40:])
    assert raised and "ray::run_statistics()" in raised[-1], tail
    assert "Data corruption detected" in driver[-1], tail
