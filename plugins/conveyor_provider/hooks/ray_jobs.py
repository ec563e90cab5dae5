"""Ray Jobs API access: the only place in Conveyor that talks to a Ray cluster's job server.

Two faces of the same connection:

- ``RayJobsHook`` (sync) wraps ``JobSubmissionClient`` for the worker: submit, reattach, stop.
- ``AsyncRayJobsClient`` speaks the Jobs REST API with aiohttp for the trigger, so nothing on the
  triggerer's event loop ever blocks.

The Airflow Connection (``conveyor_ray`` by default, type ``ray``) holds the dashboard address
(host, port, schema ``http``/``https``), the cluster's Ray auth token in its password (Ray's
token authentication, sent as ``Authorization: Bearer``), and, in ``extra``, ``headers`` (for
a proxy in front of the dashboard) and ``verify`` (``true``, ``false`` or a CA bundle path).
Without a password the token is found the way Ray finds it (``pipelines.ray_auth``); without
the connection the embedded stack's settings apply. Nothing is resolved or contacted until
first use, and the token is never logged, put in a repr, an XCom or a trigger's arguments.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from airflow.sdk.bases.hook import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from pipelines.ray_auth import auth_headers, find_ray_token

log = logging.getLogger(__name__)

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
RETRYABLE = frozenset({"FAILED", "STOPPED"})


def submission_id_for(dag_id: str, run_id: str, task_id: str, attempt: int = 0) -> str:
    """Deterministic Ray submission id: computed, never returned by the submit call, so a worker
    that dies between submitting and persisting the id still finds its job on retry."""
    digest = hashlib.sha256(f"{dag_id}\x00{run_id}\x00{task_id}".encode()).hexdigest()[:12]
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{dag_id}-{task_id}")[:80]
    return f"{base}-{digest}" + (f"-r{attempt}" if attempt else "")


@dataclass(frozen=True)
class RayConnectionConfig:
    address: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    verify: bool | str = True
    token: str | None = field(default=None, repr=False)
    """Ray's auth token; sent as ``Authorization: Bearer`` unless ``headers`` has one."""

    def job_url(self, submission_id: str) -> str:
        return f"{self.address}/#/jobs/{submission_id}"

    @property
    def request_headers(self) -> dict[str, str]:
        """What every request to the dashboard carries: the extra headers and the token."""
        if any(name.lower() == "authorization" for name in self.headers):
            return dict(self.headers)
        return {**self.headers, **auth_headers(self.token)}


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

    return RayConnectionConfig(address=get_settings().ray_jobs_address, token=find_ray_token())


class RayJobsHook(BaseHook):
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
            return RayConnectionConfig(address=self._address, token=find_ray_token())
        try:
            return _config_from_connection(self.get_connection(self.ray_conn_id))
        except AirflowNotFoundException:
            return _default_config()

    async def aconfig(self) -> RayConnectionConfig:
        """The same resolution as ``config``, without blocking an event loop."""
        if self._address:
            return RayConnectionConfig(address=self._address, token=find_ray_token())
        try:
            return _config_from_connection(await self.aget_connection(self.ray_conn_id))
        except AirflowNotFoundException:
            return _default_config()

    @property
    def address(self) -> str:
        return self.config.address

    def job_url(self, submission_id: str) -> str:
        return self.config.job_url(submission_id)

    @cached_property
    def client(self):
        from ray.job_submission import JobSubmissionClient

        cfg = self.config
        return JobSubmissionClient(
            cfg.address, headers=cfg.request_headers or None, verify=cfg.verify
        )

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

    def latest_attempt(self, base_id: str) -> tuple[int, str, str] | None:
        """(attempt, submission_id, status) of this task's newest job, or None if none exists."""
        attempt, latest = 0, None
        while (status := self.job_status(candidate := _attempt_id(base_id, attempt))) is not None:
            latest = (attempt, candidate, status)
            attempt += 1
        return latest

    def plan_attempt(self, base_id: str) -> tuple[str, bool]:
        """Which job this try of the task should follow: (submission_id, reattach).

        The latest attempt is followed if it is running or succeeded; after a FAILED or STOPPED
        one, the next suffixed id is returned for a fresh submission.
        """
        latest = self.latest_attempt(base_id)
        if latest is None:
            return base_id, False
        attempt, submission_id, status = latest
        if status not in RETRYABLE:
            log.info("reattaching to Ray job %s in state %s", submission_id, status)
            return submission_id, True
        log.info("Ray job %s ended %s; the next attempt is a new job", submission_id, status)
        return _attempt_id(base_id, attempt + 1), False

    def stop(self, submission_id: str) -> bool:
        """Stop a job (``stop_job``; ``delete_job`` refuses jobs that are still running)."""
        log.info("stopping Ray job %s", submission_id)
        return self.client.stop_job(submission_id)

    def logs(self, submission_id: str) -> str:
        return self.client.get_job_logs(submission_id)

    def message(self, submission_id: str) -> str:
        return self.client.get_job_info(submission_id).message or ""

    async def async_client(self) -> AsyncRayJobsClient:
        return AsyncRayJobsClient(await self.aconfig())


def _attempt_id(base_id: str, attempt: int) -> str:
    return base_id + (f"-r{attempt}" if attempt else "")


class AsyncRayJobsClient:
    """The Jobs REST API over aiohttp: status, stop, full logs, and a live log tail.

    Use as ``async with``; one HTTP session serves every call.
    """

    def __init__(self, config: RayConnectionConfig):
        self.config = config
        self._session = None

    async def __aenter__(self) -> AsyncRayJobsClient:
        import aiohttp

        self._session = aiohttp.ClientSession(
            headers=self.config.request_headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self._session.close()

    def _ssl(self):
        verify = self.config.verify
        if isinstance(verify, str):
            return ssl.create_default_context(cafile=verify)
        return None if verify else False

    def _url(self, path: str) -> str:
        return f"{self.config.address}/api/jobs/{path}"

    async def info(self, submission_id: str) -> dict | None:
        """The job's details (``status``, ``message``, ...), or None if no job has that id."""
        async with self._session.get(self._url(submission_id), ssl=self._ssl()) as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return await resp.json()

    async def stop(self, submission_id: str) -> bool:
        async with self._session.post(self._url(f"{submission_id}/stop"), ssl=self._ssl()) as resp:
            resp.raise_for_status()
            return bool((await resp.json()).get("stopped"))

    async def logs(self, submission_id: str) -> str:
        async with self._session.get(self._url(f"{submission_id}/logs"), ssl=self._ssl()) as resp:
            resp.raise_for_status()
            return (await resp.json()).get("logs", "")

    async def tail(self, submission_id: str) -> AsyncIterator[str]:
        """Chunks of the job's output as the driver writes them; ends when the job ends."""
        import aiohttp

        ws_url = self._url(f"{submission_id}/logs/tail").replace("http", "ws", 1)
        async with self._session.ws_connect(ws_url, ssl=self._ssl()) as ws:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    yield msg.data
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise RuntimeError(f"log stream of {submission_id} broke: {ws.exception()}")
