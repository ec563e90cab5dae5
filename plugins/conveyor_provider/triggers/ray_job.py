"""Wait for a Ray job on the triggerer, streaming its output into the Airflow task log.

Async end to end: status and stop go through the Jobs REST API over aiohttp, and the job's
output comes from the API's log-tail websocket, so no call ever blocks the triggerer's loop.
Stopping the job happens in ``on_kill`` (the user marked, cleared or failed the task) and when
the trigger's own deadline passes; a triggerer restart only cancels the trigger, and the job
keeps running for the next triggerer to pick up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from conveyor_provider.hooks.ray_jobs import TERMINAL, AsyncRayJobsClient, RayJobsHook

LOG_DRAIN_S = 5.0


def job_event(status: str, submission_id: str, job_status: str | None, message: str) -> dict:
    """The small event every exit of the trigger yields."""
    return {
        "status": status,
        "submission_id": submission_id,
        "job_status": job_status,
        "message": message,
    }


class RayJobTrigger(BaseTrigger):
    """Fire once the Ray job ``submission_id`` is SUCCEEDED, FAILED or STOPPED, or its deadline
    (epoch seconds) passes, in which case the job is stopped first."""

    def __init__(
        self,
        submission_id: str,
        ray_conn_id: str = RayJobsHook.default_conn_name,
        poll_interval: float = 2.0,
        deadline: float | None = None,
        stream_logs: bool = True,
    ):
        super().__init__()
        self.submission_id = submission_id
        self.ray_conn_id = ray_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.stream_logs = stream_logs

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "submission_id": self.submission_id,
                "ray_conn_id": self.ray_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "stream_logs": self.stream_logs,
            },
        )

    async def _client(self) -> AsyncRayJobsClient:
        return await RayJobsHook(ray_conn_id=self.ray_conn_id).async_client()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with await self._client() as client:
            streamer = asyncio.create_task(self._stream(client)) if self.stream_logs else None
            try:
                event = await self._wait(client, streamer)
            finally:
                if streamer is not None:
                    streamer.cancel()
                    await asyncio.gather(streamer, return_exceptions=True)
        yield TriggerEvent(event)

    async def _wait(self, client: AsyncRayJobsClient, streamer: asyncio.Task | None) -> dict:
        sid = self.submission_id
        while True:
            info = await client.info(sid)
            if info is None:
                return job_event("error", sid, None, f"Ray job {sid} does not exist")
            job_status, message = info["status"], info.get("message") or ""
            if job_status in TERMINAL:
                if streamer is not None:  # let the tail deliver the job's last lines
                    await asyncio.wait({streamer}, timeout=LOG_DRAIN_S)
                status = "success" if job_status == "SUCCEEDED" else "error"
                return job_event(status, sid, job_status, message)
            if self.deadline is not None and time.time() >= self.deadline:
                await client.stop(sid)
                return job_event("timeout", sid, job_status, f"Ray job {sid} timed out; stopped")
            await asyncio.sleep(self.poll_interval)

    async def _stream(self, client: AsyncRayJobsClient) -> None:
        """Log each line of the job's output as it arrives (the triggerer routes trigger logs
        into the task's log)."""
        pending = ""
        try:
            async for chunk in client.tail(self.submission_id):
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    self.log.info("[ray job] %s", line)
            if pending:
                self.log.info("[ray job] %s", pending)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken stream must not fail the job's task
            self.log.warning("live output of Ray job %s unavailable: %s", self.submission_id, exc)

    async def on_kill(self) -> None:
        """The user acted on the task (mark failed/success, clear): stop the job."""
        async with await self._client() as client:
            stopped = await client.stop(self.submission_id)
        self.log.info("stopped Ray job %s: %s", self.submission_id, stopped)
