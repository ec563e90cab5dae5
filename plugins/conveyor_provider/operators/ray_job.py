"""Submit a ``ray_jobs/`` entrypoint as a Ray job and return its typed JSON result.

The submission id is derived from dag_id, run_id and task_id, so a retried task reattaches to
its job (or reuses its result) instead of submitting a duplicate. Killing the task stops the job.
"""

from __future__ import annotations

import json
import re
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from conveyor_provider.hooks.ray_jobs import TERMINAL, RayJobsHook, submission_id_for

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_EXCLUDES = [".venv", ".local", ".git", "tests", "docs", "bench", "**/__pycache__"]


class RayJobOperator(BaseOperator):
    template_fields = ("entrypoint", "runtime_env", "results_dir")

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
        poll_interval: float = 2.0,
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
        self.poll_interval = poll_interval
        self.submission_id: str | None = None

    @cached_property
    def hook(self) -> RayJobsHook:
        return RayJobsHook(ray_conn_id=self.ray_conn_id)

    def _run_key(self, context) -> str:
        raw = f"{self.dag_id}-{context['run_id']}-{self.task_id}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)

    def execute(self, context) -> Any:
        run_key = self._run_key(context)
        result_path = self._results_dir() / f"{run_key}.json"
        runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": DEFAULT_EXCLUDES}
        runtime_env.update(self.runtime_env or {})
        runtime_env["env_vars"] = {
            **runtime_env.get("env_vars", {}),
            "CONVEYOR_RUN_KEY": run_key,
            "CONVEYOR_RESULT_PATH": str(result_path),
        }
        base_id = submission_id_for(self.dag_id, context["run_id"], self.task_id)
        self.submission_id, how = self.hook.submit_or_reattach(
            base_id,
            self.entrypoint,
            runtime_env=runtime_env,
            entrypoint_num_cpus=self.entrypoint_num_cpus,
            entrypoint_num_gpus=self.entrypoint_num_gpus,
            entrypoint_memory=self.entrypoint_memory,
            entrypoint_resources=self.entrypoint_resources,
        )
        self.log.info(
            "Ray job %s (%s): %s/#/jobs/%s",
            self.submission_id,
            how,
            self.hook.address,
            self.submission_id,
        )
        status = self._wait(self.submission_id)
        self.log.info(
            "Ray job %s output:\n%s",
            self.submission_id,
            self.hook.logs(self.submission_id)[-20000:],
        )
        if status != "SUCCEEDED":
            raise AirflowException(
                f"Ray job {self.submission_id} {status}: {self.hook.message(self.submission_id)}"
            )
        if not result_path.exists():
            raise AirflowException(f"Ray job {self.submission_id} wrote no result {result_path}")
        return json.loads(result_path.read_text())

    def _results_dir(self) -> Path:
        """Shared storage the job writes its result to; from settings unless given."""
        if self.results_dir:
            return Path(self.results_dir).resolve()
        from pipelines.settings import get_settings

        return get_settings().runs_dir / "results"

    def _wait(self, submission_id: str) -> str:
        while True:
            status = self.hook.job_status(submission_id)
            if status in TERMINAL:
                return status
            time.sleep(self.poll_interval)

    def on_kill(self) -> None:
        if self.submission_id:
            self.hook.stop(self.submission_id)
