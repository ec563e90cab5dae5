"""Hook around Ray's ``JobSubmissionClient``: the only place that talks to the Jobs API.

The client is created lazily, so constructing the hook (at DAG parse time, in an operator's
``__init__``) never touches the network.
"""

from __future__ import annotations

import hashlib
import logging
import re
from functools import cached_property

from airflow.sdk.bases.hook import BaseHook

log = logging.getLogger(__name__)

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


def submission_id_for(dag_id: str, run_id: str, task_id: str, attempt: int = 0) -> str:
    """Deterministic Ray submission id: computed, never returned by the submit call, so a worker
    that dies between submitting and persisting the id still finds its job on retry."""
    digest = hashlib.sha256(f"{dag_id}\x00{run_id}\x00{task_id}".encode()).hexdigest()[:12]
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{dag_id}-{task_id}")[:80]
    return f"{base}-{digest}" + (f"-r{attempt}" if attempt else "")


class RayJobsHook(BaseHook):
    conn_name_attr = "ray_conn_id"
    default_conn_name = "conveyor_ray"
    conn_type = "ray"
    hook_name = "Ray Jobs"

    def __init__(self, ray_conn_id: str = default_conn_name, address: str | None = None):
        super().__init__()
        self.ray_conn_id = ray_conn_id
        self._address = address

    def _connection_address(self) -> tuple[str, dict]:
        """Address and headers from the Airflow Connection, else from Conveyor's settings."""
        if self._address:
            return self._address, {}
        try:
            conn = self.get_connection(self.ray_conn_id)
        except Exception:  # no such connection: the embedded stack's settings apply
            from pipelines.settings import get_settings

            return get_settings().ray_jobs_address, {}
        scheme = conn.schema or "http"
        port = f":{conn.port}" if conn.port else ""
        headers = (conn.extra_dejson or {}).get("headers", {})
        return f"{scheme}://{conn.host}{port}", headers

    @cached_property
    def address(self) -> str:
        return self._connection_address()[0]

    @cached_property
    def client(self):
        from ray.job_submission import JobSubmissionClient

        address, headers = self._connection_address()
        return JobSubmissionClient(address, headers=headers or None)

    def job_status(self, submission_id: str) -> str | None:
        """The job's status name, or None if no job has that id."""
        try:
            return self.client.get_job_info(submission_id).status.value
        except RuntimeError as exc:  # the SDK raises RuntimeError for an unknown id
            if "does not exist" in str(exc) or "404" in str(exc):
                return None
            raise

    def submit(self, submission_id: str, entrypoint: str, **kwargs) -> str:
        log.info("submitting Ray job submission_id=%s entrypoint=%s", submission_id, entrypoint)
        return self.client.submit_job(entrypoint=entrypoint, submission_id=submission_id, **kwargs)

    def submit_or_reattach(self, base_id: str, entrypoint: str, **kwargs) -> tuple[str, str]:
        """Find this task's latest attempt: attach if running, reuse if succeeded, otherwise
        submit the next attempt. Returns (submission_id, what happened)."""
        attempt = 0
        latest: tuple[str, str] | None = None
        while True:
            candidate = base_id + (f"-r{attempt}" if attempt else "")
            status = self.job_status(candidate)
            if status is None:
                break
            latest = (candidate, status)
            attempt += 1
        if latest and latest[1] not in ("FAILED", "STOPPED"):
            log.info("reattaching to Ray job %s in state %s", *latest)
            return latest[0], "reattached"
        new_id = base_id + (f"-r{attempt}" if attempt else "")
        return self.submit(new_id, entrypoint, **kwargs), "submitted"

    def stop(self, submission_id: str) -> bool:
        """Stop a job (``stop_job``; ``delete_job`` refuses jobs that are still running)."""
        log.info("stopping Ray job %s", submission_id)
        return self.client.stop_job(submission_id)

    def logs(self, submission_id: str) -> str:
        return self.client.get_job_logs(submission_id)

    def message(self, submission_id: str) -> str:
        return self.client.get_job_info(submission_id).message or ""
