"""Ray's Jobs API, for everything in Conveyor that submits, follows or stops a Ray job: the
Airflow operator and trigger (through ``conveyor_provider.hooks.ray_jobs``, which only adds the
Airflow Connection), the ``conveyor`` CLI and the tests. Nothing here imports Airflow.

- ``RayJobsClient`` (sync) wraps ``JobSubmissionClient``: submit, reattach to the latest
  attempt of a deterministic submission id, wait, stop, and ``run`` (all of it, plus the job's
  typed JSON result, ``ray_jobs.contract``).
- ``AsyncRayJobsClient`` speaks the Jobs REST API with aiohttp, so an event loop (the
  triggerer's) never blocks.

Both take a ``RayConnectionConfig``: the dashboard address, extra headers (a proxy), TLS
verification and Ray's auth token (sent as ``Authorization: Bearer``; found the way Ray finds
it, ``pipelines.ray_auth``, unless given). The token is never logged or put in a repr.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pipelines.ray_auth import auth_headers, find_ray_token

log = logging.getLogger(__name__)

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
RETRYABLE = frozenset({"FAILED", "STOPPED"})
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXCLUDES = [".venv", ".local", ".git", "tests", "docs", "bench", "**/__pycache__"]
RESULT_PATH_ENV = "CONVEYOR_RESULT_PATH"
"""Where a job writes its typed JSON result (the same name as ``ray_jobs.contract``'s)."""


def project_runtime_env() -> dict:
    """What a job needs of this project: its code as the working directory (the repository's
    use cases included), without what only a developer's checkout holds."""
    return {"working_dir": str(PROJECT_ROOT), "excludes": list(DEFAULT_EXCLUDES)}


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

    @classmethod
    def at(cls, address: str) -> RayConnectionConfig:
        """A cluster's dashboard address, with the token found the way Ray finds it."""
        return cls(address=address, token=find_ray_token())

    def job_url(self, submission_id: str) -> str:
        return f"{self.address}/#/jobs/{submission_id}"

    @property
    def request_headers(self) -> dict[str, str]:
        """What every request to the dashboard carries: the extra headers and the token."""
        if any(name.lower() == "authorization" for name in self.headers):
            return dict(self.headers)
        return {**self.headers, **auth_headers(self.token)}


class RayJobFailed(RuntimeError):
    """A job ended FAILED or STOPPED; the message names it and Ray's reason."""


class RayJobsClient:
    """The Jobs API of one cluster (sync)."""

    def __init__(self, config: RayConnectionConfig):
        self.config = config

    @cached_property
    def client(self):
        from ray.job_submission import JobSubmissionClient

        cfg = self.config
        return JobSubmissionClient(
            cfg.address, headers=cfg.request_headers or None, verify=cfg.verify
        )

    def job_url(self, submission_id: str) -> str:
        return self.config.job_url(submission_id)

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
        """(attempt, submission_id, status) of the newest job of ``base_id``, or None."""
        attempt, latest = 0, None
        while (status := self.job_status(candidate := _attempt_id(base_id, attempt))) is not None:
            latest = (attempt, candidate, status)
            attempt += 1
        return latest

    def plan_attempt(self, base_id: str) -> tuple[str, bool]:
        """Which job a (re)try should follow: (submission_id, reattach).

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

    def wait(self, submission_id: str, timeout: float | None = None, poll: float = 2.0) -> str:
        """Until the job ends; its final status (a ``TimeoutError`` past ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.job_status(submission_id)) not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Ray job {submission_id} still {status} after {timeout}s")
            time.sleep(poll)
        return status

    def run(
        self,
        base_id: str,
        entrypoint: str,
        *,
        runtime_env: dict,
        result_path: str | Path,
        timeout: float | None = None,
    ) -> dict:
        """Submit ``entrypoint`` (or reattach to its running or finished attempt), wait, and
        return the typed result the job wrote to ``result_path``."""
        submission_id, reattach = self.plan_attempt(base_id)
        if not reattach:
            env = {**runtime_env.get("env_vars", {}), RESULT_PATH_ENV: str(result_path)}
            self.submit(submission_id, entrypoint, runtime_env={**runtime_env, "env_vars": env})
        status = self.wait(submission_id, timeout)
        if status != "SUCCEEDED":
            raise RayJobFailed(f"Ray job {submission_id} {status}: {self.message(submission_id)}")
        return json.loads(Path(result_path).read_text())


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
