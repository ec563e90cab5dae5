"""RayJobOperator on a real Ray head, run by Airflow's ``dag.test()`` in a separate process.

Nothing here is mocked: the operator submits to the Ray Jobs API of a head started by the
fixture, defers to ``RayJobTrigger`` (run in line by ``dag.test``), and the job writes its
result through ``ray_jobs.contract``.
"""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conveyor.processes import wait_until
from conveyor_provider.hooks.ray_jobs import RayJobsHook, submission_id_for

pytestmark = pytest.mark.integration

JOBS = Path(__file__).parent / "jobs"
DAG_ID = "ray_job_probe"
DAG = """
import json, pendulum
from pathlib import Path
from airflow.sdk import dag, task
from conveyor_provider.operators.ray_job import RayJobOperator


@dag(dag_id="{dag_id}", schedule=None, catchup=False,
     start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def probe():
    job = RayJobOperator(
        task_id="job",
        entrypoint={entrypoint!r},
        runtime_env={{"working_dir": {jobs!r}}},
        results_dir={results!r},
        deferrable={deferrable!r},
        poll_interval=0.5,
        retries=0,
    )

    @task
    def keep(result):
        Path({out!r}).write_text(json.dumps(result))

    keep(job.output)

    @task(trigger_rule="all_done")
    def job_error(ti=None):
        Path({errors!r}).write_text(json.dumps(ti.xcom_pull(task_ids="job", key="job_error")))

    job >> job_error()


probe()
"""


def _write_dag(tmp_path: Path, args: str, deferrable: bool = True) -> Path:
    dag_file = tmp_path / "probe_dag.py"
    dag_file.write_text(
        DAG.format(
            dag_id=DAG_ID,
            entrypoint=f"python scripted_job.py {args}",
            jobs=str(JOBS),
            results=str(tmp_path / "results"),
            deferrable=deferrable,
            out=str(tmp_path / "xcom.json"),
            errors=str(tmp_path / "job_error.json"),
        )
    )
    return dag_file


def _hook(ray_head) -> RayJobsHook:
    return RayJobsHook(address=ray_head.ray_jobs_address)


def _jobs_of(hook: RayJobsHook, base_id: str) -> list:
    return [j for j in hook.client.list_jobs() if (j.submission_id or "").startswith(base_id)]


class Streamed:
    """A ``dag.test`` process whose combined output is collected while it runs."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def text(self) -> str:
        return "".join(self.output)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "sync"])
def test_job_result_is_the_xcom_and_job_output_is_in_the_task_log(
    airflow_home, tmp_path, deferrable
):
    args = "--lines 3 --result '{\"answer\": 42}'"
    dag_file = _write_dag(tmp_path, args, deferrable)
    # Each case its own DAG run: the same run would (rightly) reattach to the other's job.
    logical_date = "2026-11-01T00:00:00+00:00" if deferrable else "2026-11-05T00:00:00+00:00"
    result, stdout, stderr = airflow_home.run_dag(dag_file, DAG_ID, logical_date)
    assert result["state"] == "success", stdout[-4000:] + stderr[-4000:]
    assert json.loads((tmp_path / "xcom.json").read_text()) == {"answer": 42}
    log = stdout + stderr
    assert all(f"[ray job] scripted line {i}" in log for i in range(3)), log[-4000:]


def test_failed_job_error_text_is_the_task_error(airflow_home, tmp_path):
    """A job that writes its own error before failing (the rollout job does): the task error
    leads with it, XCom ``job_error`` keeps it for the run report, and the job's output (its
    traceback) is in the task log."""
    error = "deploy rolled back: smoke test failed; still serving version 3"
    dag_file = _write_dag(tmp_path, f"--fail 'disk on fire' --error '{error}'")
    result, stdout, stderr = airflow_home.run_dag(dag_file, DAG_ID, "2026-11-02T00:00:00+00:00")
    assert result["state"] == "failed"
    assert result["tasks"]["job"] == "failed"
    log = stdout + stderr
    assert "RuntimeError: disk on fire" in log, log[-4000:]
    assert f"{error} (Ray job " in log and " FAILED)" in log, log[-4000:]
    assert json.loads((tmp_path / "job_error.json").read_text()) == error


def test_retry_after_the_task_process_is_killed_reattaches_to_the_same_job(
    airflow_home, ray_head, tmp_path
):
    go, starts = tmp_path / "go", tmp_path / "starts.txt"
    dag_file = _write_dag(tmp_path, f"--wait-for {go} --starts {starts} --result '{{\"n\": 1}}'")
    logical_date = "2026-11-03T00:00:00+00:00"
    base_id = submission_id_for(DAG_ID, f"manual__{logical_date}", "job")
    hook = _hook(ray_head)
    argv = airflow_home.dag_test_argv(dag_file, DAG_ID, logical_date, {})

    first = Streamed(argv, airflow_home.env_for(dag_file))
    try:
        wait_until(lambda: hook.job_status(base_id) == "RUNNING", "job running", 120)
    finally:
        first.kill()  # SIGKILL: no on_kill, as when a worker dies
    assert hook.job_status(base_id) == "RUNNING"

    retry = Streamed(argv, airflow_home.env_for(dag_file))
    try:
        wait_until(lambda: "(reattached)" in retry.text(), "reattach", 120)
        go.touch()
        retry.proc.wait(timeout=300)
    finally:
        go.touch()  # never leave the job waiting
        retry.kill()
    assert '"state": "success"' in retry.text(), retry.text()[-4000:]
    assert json.loads((tmp_path / "xcom.json").read_text()) == {"n": 1}
    jobs = _jobs_of(hook, base_id)
    assert [(j.submission_id, j.status.value) for j in jobs] == [(base_id, "SUCCEEDED")]
    assert starts.read_text().count("started") == 1


def test_killing_the_task_stops_the_ray_job_within_10s(airflow_home, ray_head, tmp_path):
    dag_file = _write_dag(tmp_path, f"--wait-for {tmp_path / 'never'}", deferrable=False)
    logical_date = "2026-11-04T00:00:00+00:00"
    base_id = submission_id_for(DAG_ID, f"manual__{logical_date}", "job")
    hook = _hook(ray_head)
    task = Streamed(
        airflow_home.dag_test_argv(dag_file, DAG_ID, logical_date, {}),
        airflow_home.env_for(dag_file),
    )
    try:
        wait_until(lambda: hook.job_status(base_id) == "RUNNING", "job running", 120)
        wait_until(lambda: "[ray job] waiting" in task.text(), "task polling", 60)
        task.proc.send_signal(signal.SIGTERM)  # what Airflow's supervisor sends on kill
        killed = time.monotonic()
        wait_until(lambda: hook.job_status(base_id) == "STOPPED", "job stopped", 10)
        assert time.monotonic() - killed <= 10
    finally:
        task.kill()
        if hook.job_status(base_id) not in (None, "STOPPED", "FAILED", "SUCCEEDED"):
            hook.stop(base_id)
