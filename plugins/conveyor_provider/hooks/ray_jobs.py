"""The Airflow face of Ray's Jobs API: the ``ray`` connection type and ``RayJobsHook``.

The client itself is plain Python (``pipelines.ray_jobs_client``), shared with the CLI and the
tests; this hook only resolves the Airflow Connection (``conveyor_ray`` by default, type
``ray``): the dashboard address (host, port, schema ``http``/``https``), the cluster's Ray
auth token in its password, and, in ``extra``, ``headers`` (for a proxy in front of the
dashboard) and ``verify`` (``true``, ``false`` or a CA bundle path). Without a password the
token is found the way Ray finds it (``pipelines.ray_auth``); without the connection the
embedded stack's settings apply. Nothing is resolved or contacted until first use, and the
token is never logged, put in a repr, an XCom or a trigger's arguments.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk.bases.hook import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from pipelines.ray_auth import find_ray_token
from pipelines.ray_jobs_client import (
    RETRYABLE,
    TERMINAL,
    AsyncRayJobsClient,
    RayConnectionConfig,
    RayJobsClient,
    submission_id_for,
)

__all__ = [
    "RETRYABLE",
    "TERMINAL",
    "AsyncRayJobsClient",
    "RayConnectionConfig",
    "RayJobsHook",
    "submission_id_for",
]


def _config_from_connection(conn) -> RayConnectionConfig:
    extra = conn.extra_dejson or {}
    scheme = conn.schema or "http"
    port = f":{conn.port}" if conn.port else ""
    host = (conn.host or "").rstrip("/")
    address = host if "://" in host else f"{scheme}://{host}{port}"
    return RayConnectionConfig(
        address=address,
        headers=dict(extra.get("headers", {})),
        verify=extra.get("verify", True),
        token=conn.password or find_ray_token(),
    )


def _default_config() -> RayConnectionConfig:
    from pipelines.settings import get_settings

    return RayConnectionConfig.at(get_settings().ray_jobs_address)


class RayJobsHook(BaseHook):
    """``RayJobsClient`` on the cluster of an Airflow Connection."""

    conn_name_attr = "ray_conn_id"
    default_conn_name = "conveyor_ray"
    conn_type = "ray"
    hook_name = "Ray Jobs"

    def __init__(self, ray_conn_id: str = default_conn_name, address: str | None = None):
        super().__init__()
        self.ray_conn_id = ray_conn_id
        self._address = address

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["login"],
            "relabeling": {
                "host": "Dashboard host",
                "schema": "Scheme (http or https)",
                "password": "Ray auth token",
            },
            "placeholders": {
                "host": "ray-head",
                "port": "8265",
                "schema": "http",
                "password": "the cluster's RAY_AUTH_TOKEN (empty: found as Ray finds it)",
                "extra": '{"headers": {"X-Proxy-Auth": "..."}, "verify": true}',
            },
        }

    @cached_property
    def config(self) -> RayConnectionConfig:
        if self._address:
            return RayConnectionConfig.at(self._address)
        try:
            return _config_from_connection(self.get_connection(self.ray_conn_id))
        except AirflowNotFoundException:
            return _default_config()

    async def aconfig(self) -> RayConnectionConfig:
        """The same resolution as ``config``, without blocking an event loop."""
        if self._address:
            return RayConnectionConfig.at(self._address)
        try:
            return _config_from_connection(await self.aget_connection(self.ray_conn_id))
        except AirflowNotFoundException:
            return _default_config()

    @cached_property
    def jobs(self) -> RayJobsClient:
        return RayJobsClient(self.config)

    @property
    def address(self) -> str:
        return self.config.address

    @property
    def client(self):
        """Ray's ``JobSubmissionClient`` for this connection."""
        return self.jobs.client

    def job_url(self, submission_id: str) -> str:
        return self.jobs.job_url(submission_id)

    def job_status(self, submission_id: str) -> str | None:
        return self.jobs.job_status(submission_id)

    def submit(self, submission_id: str, entrypoint: str, **kwargs) -> str:
        return self.jobs.submit(submission_id, entrypoint, **kwargs)

    def latest_attempt(self, base_id: str) -> tuple[int, str, str] | None:
        return self.jobs.latest_attempt(base_id)

    def plan_attempt(self, base_id: str) -> tuple[str, bool]:
        return self.jobs.plan_attempt(base_id)

    def stop(self, submission_id: str) -> bool:
        return self.jobs.stop(submission_id)

    def logs(self, submission_id: str) -> str:
        return self.jobs.logs(submission_id)

    def message(self, submission_id: str) -> str:
        return self.jobs.message(submission_id)

    async def async_client(self) -> AsyncRayJobsClient:
        return AsyncRayJobsClient(await self.aconfig())
