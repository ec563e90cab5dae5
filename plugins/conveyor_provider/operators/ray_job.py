"""Submit a ``ray_jobs/`` entrypoint as a Ray job and return its typed JSON result.

- The submission id is derived from dag_id, run_id and task_id, so a retried task reattaches to
  its job (RUNNING: wait; SUCCEEDED: reuse the result) and only a FAILED/STOPPED job gets a new,
  suffixed attempt. The id is also kept in Airflow's task state store for operators and tools
  that look there.
- Deferrable by default: the worker slot is freed and ``RayJobTrigger`` waits on the triggerer,
  streaming the job's output into the task log.
- Killing the task (mark failed/success, clear, timeout) stops the job with ``stop_job``.
- The job writes its result as JSON to shared storage (``ray_jobs.contract``); it becomes the
  task's XCom. Nothing is parsed out of stdout. Its ``lineage`` key (what the job read and
  wrote, ``pipelines.lineage``) becomes the task's OpenLineage inputs and outputs.
- A job that fails may still write ``{"error": ...}`` (the rollout does: what failed and what
  still serves). That text leads the task's error and is pushed to XCom ``job_error``, where
  the run report reads it.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from conveyor_provider.hooks.ray_jobs import TERMINAL, RayJobsHook, submission_id_for
from conveyor_provider.lineage import ReportsLineage
from conveyor_provider.links.ray_job import RAY_JOB_URL_KEY, RayJobLink
from conveyor_provider.triggers.ray_job import RayJobTrigger
from pipelines.lineage import Lineage
from pipelines.ray_jobs_client import DEFAULT_EXCLUDES, PROJECT_ROOT, project_runtime_env

__all__ = ["DEFAULT_EXCLUDES", "JOB_ERROR_KEY", "PROJECT_ROOT", "RayJobOperator"]
SUBMISSION_ID_KEY = "ray_submission_id"
JOB_ERROR_KEY = "job_error"
"""XCom key of a failed job's own account of the failure (its result's ``error``)."""
TRIGGER_GRACE = timedelta(minutes=1)


def default_deferrable() -> bool:
    """``[conveyor] ray_jobs_deferrable`` (``AIRFLOW__CONVEYOR__RAY_JOBS_DEFERRABLE``): where
    Ray job tasks wait unless a DAG says otherwise."""
    from airflow.sdk.configuration import conf

    return conf.getboolean("conveyor", "ray_jobs_deferrable", fallback=True)


class RayJobOperator(ReportsLineage, BaseOperator):
    """Run ``entrypoint`` on the Ray cluster of connection ``ray_conn_id``.

    ``runtime_env`` is merged over the default (``working_dir`` = this project); the
    ``entrypoint_*`` arguments reserve resources for the driver. ``job_timeout`` (defaults to
    ``execution_timeout``) stops the job when it runs too long. ``deferrable`` (default: the
    deployment's ``[conveyor] ray_jobs_deferrable``, itself True) waits for the job in the
    triggerer; False keeps the worker slot while it runs (no triggerer needed).
    """

    template_fields = ("entrypoint", "runtime_env", "results_dir")
    operator_extra_links = (RayJobLink(),)
    ui_color = "#e4f0fb"

    def __init__(
        self,
        *,
        entrypoint: str,
        results_dir: str | None = None,
        runtime_env: dict | None = None,
        entrypoint_num_cpus: float | None = None,
        entrypoint_num_gpus: float | None = None,
        entrypoint_memory: int | None = None,
        entrypoint_resources: dict[str, float] | None = None,
        ray_conn_id: str = RayJobsHook.default_conn_name,
        deferrable: bool | None = None,
        poll_interval: float = 2.0,
        job_timeout: timedelta | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.entrypoint = entrypoint
        self.results_dir = results_dir
        self.runtime_env = runtime_env
        self.entrypoint_num_cpus = entrypoint_num_cpus
        self.entrypoint_num_gpus = entrypoint_num_gpus
        self.entrypoint_memory = entrypoint_memory
        self.entrypoint_resources = entrypoint_resources
        self.ray_conn_id = ray_conn_id
        self.deferrable = deferrable if deferrable is not None else default_deferrable()
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.submission_id: str | None = None

    @cached_property
    def hook(self) -> RayJobsHook:
        return RayJobsHook(ray_conn_id=self.ray_conn_id)

    def execute(self, context) -> Any:
        base_id = submission_id_for(self.dag_id, context["run_id"], self.task_id)
        self.submission_id, reattach = self.hook.plan_attempt(base_id)
        if not reattach:
            self.hook.submit(
                self.submission_id,
                self.entrypoint,
                runtime_env=self._runtime_env(context, self._result_path(self.submission_id)),
                entrypoint_num_cpus=self.entrypoint_num_cpus,
                entrypoint_num_gpus=self.entrypoint_num_gpus,
                entrypoint_memory=self.entrypoint_memory,
                entrypoint_resources=self.entrypoint_resources,
            )
        self._remember(context, self.submission_id)
        self.log.info(
            "Ray job %s (%s): %s",
            self.submission_id,
            "reattached" if reattach else "submitted",
            self.hook.job_url(self.submission_id),
        )
        timeout = self.job_timeout or self.execution_timeout
        if self.deferrable and self.hook.job_status(self.submission_id) not in TERMINAL:
            self.defer(
                trigger=RayJobTrigger(
                    submission_id=self.submission_id,
                    ray_conn_id=self.ray_conn_id,
                    poll_interval=self.poll_interval,
                    deadline=time.time() + timeout.total_seconds() if timeout else None,
                ),
                method_name="execute_complete",
                timeout=timeout + TRIGGER_GRACE if timeout else None,
            )
        status = self._wait_streaming_logs(self.submission_id, timeout)
        message = self.hook.message(self.submission_id)
        return self._finish(context, self.submission_id, status, message)

    def execute_complete(self, context, event: dict) -> Any:
        """Back from the trigger: raise on error or timeout, else return the job's result."""
        self.submission_id = event["submission_id"]
        if event["status"] == "timeout":
            raise AirflowException(event["message"])
        return self._finish(context, self.submission_id, event["job_status"], event["message"])

    def on_kill(self) -> None:
        if self.submission_id:
            self.hook.stop(self.submission_id)

    def _finish(self, context, submission_id: str, job_status: str | None, message: str) -> Any:
        result_path = self._result_path(submission_id)
        if job_status != "SUCCEEDED":
            error = self._job_error(result_path)
            if error:
                context["ti"].xcom_push(key=JOB_ERROR_KEY, value=error)
                raise AirflowException(f"{error} (Ray job {submission_id} {job_status})")
            raise AirflowException(f"Ray job {submission_id} {job_status}: {message}")
        if not result_path.exists():
            raise AirflowException(f"Ray job {submission_id} wrote no result at {result_path}")
        result = json.loads(result_path.read_text())
        if isinstance(result, dict):
            self.lineage = Lineage.from_dict(result.get("lineage"))
        return result

    @staticmethod
    def _job_error(result_path: Path) -> str | None:
        """The ``error`` a failed job wrote as its result, if it wrote one."""
        try:
            written = json.loads(result_path.read_text())
        except (OSError, ValueError):
            return None
        error = written.get("error") if isinstance(written, dict) else None
        return str(error) if error else None

    def _remember(self, context, submission_id: str) -> None:
        """Record the job for the "Ray job" link and Airflow's task state store."""
        context["ti"].xcom_push(key=RAY_JOB_URL_KEY, value=self.hook.job_url(submission_id))
        store = context.get("task_state_store")
        if store is not None:
            store.set(SUBMISSION_ID_KEY, submission_id)

    def _wait_streaming_logs(self, submission_id: str, timeout: timedelta | None) -> str:
        """The synchronous path: poll, printing new output lines as they appear."""
        deadline = time.monotonic() + timeout.total_seconds() if timeout else None
        printed = 0
        while True:
            status = self.hook.job_status(submission_id)
            output = self.hook.logs(submission_id)
            for line in output[printed:].splitlines():
                self.log.info("[ray job] %s", line)
            printed = len(output)
            if status in TERMINAL:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                self.hook.stop(submission_id)
                raise AirflowException(f"Ray job {submission_id} timed out; stopped")
            time.sleep(self.poll_interval)

    def _run_key(self, context) -> str:
        raw = f"{self.dag_id}-{context['run_id']}-{self.task_id}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)

    def _result_path(self, submission_id: str) -> Path:
        """Where this attempt's job writes its result: shared storage, from settings unless
        given; one file per attempt, so an older attempt's result is never mistaken for it."""
        if self.results_dir:
            root = Path(self.results_dir).resolve()
        else:
            from pipelines.settings import get_settings

            root = get_settings().runs_dir / "results"
        return root / f"{submission_id}.json"

    def _runtime_env(self, context, result_path: Path) -> dict:
        runtime_env = project_runtime_env()
        runtime_env.update(self.runtime_env or {})
        runtime_env["env_vars"] = {
            **runtime_env.get("env_vars", {}),
            "CONVEYOR_RUN_KEY": self._run_key(context),
            "CONVEYOR_RESULT_PATH": str(result_path),
        }
        return runtime_env
