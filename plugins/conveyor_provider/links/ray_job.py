"""The "Ray job" button on a task: opens the task's job on the Ray dashboard (the URL the
operator stored when it submitted or reattached)."""

from __future__ import annotations

from conveyor_provider.links.xcom_url import XComUrlLink

RAY_JOB_URL_KEY = "ray_job_url"


class RayJobLink(XComUrlLink):
    name = "Ray job"
    xcom_key = RAY_JOB_URL_KEY
