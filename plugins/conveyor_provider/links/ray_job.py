"""The "Ray job" button on a task: opens the task's job on the Ray dashboard."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink

RAY_JOB_URL_KEY = "ray_job_url"


class RayJobLink(BaseOperatorLink):
    name = "Ray job"

    def get_link(self, operator, *, ti_key) -> str:
        """The URL the operator stored when it submitted or reattached; empty before that."""
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=RAY_JOB_URL_KEY) or ""
