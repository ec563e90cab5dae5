"""RayJobTrigger against real Ray jobs, on an asyncio loop of this test's own.

The triggerer runs every trigger on one event loop, so these tests check what matters there:
output arrives while the job runs, the loop is never blocked, and a user's kill stops the job.
"""

import asyncio
import json
import time
from pathlib import Path

import pytest

from conveyor_provider.hooks.ray_jobs import RayJobsHook
from conveyor_provider.triggers.ray_job import RayJobTrigger

pytestmark = pytest.mark.integration

JOBS = Path(__file__).parent / "jobs"


@pytest.fixture
def hook(ray_head, monkeypatch):
    """A real connection, resolved the way the triggerer resolves it (from the environment)."""
    conn = {"conn_type": "ray", "host": ray_head.host, "port": ray_head.ray_dashboard_port}
    monkeypatch.setenv("AIRFLOW_CONN_CONVEYOR_RAY", json.dumps(conn))
    return RayJobsHook(address=ray_head.ray_jobs_address)


def _submit(hook: RayJobsHook, name: str, args: str) -> str:
    sid = f"trigger-test-{name}-{time.time_ns()}"
    hook.submit(sid, f"python scripted_job.py {args}", runtime_env={"working_dir": str(JOBS)})
    return sid


class Lines:
    """Collects what the trigger logs, with the job's status at the time of each line."""

    def __init__(self):
        self.lines: list[str] = []

    def info(self, fmt, *args):
        self.lines.append(fmt % args)

    warning = info


async def _until(check, timeout: float):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def test_output_reaches_the_log_while_the_job_runs(hook, tmp_path):
    go = tmp_path / "go"
    sid = _submit(hook, "live", f"--lines 2 --wait-for {go}")
    trigger, logged = RayJobTrigger(sid, poll_interval=0.5), Lines()
    trigger._log = logged

    async def scenario():
        run = asyncio.ensure_future(anext(trigger.run()))
        await _until(lambda: "[ray job] scripted line 1" in logged.lines, 120)
        status_when_seen = hook.job_status(sid)
        go.touch()
        return status_when_seen, (await asyncio.wait_for(run, 120)).payload

    status_when_seen, event = asyncio.run(scenario())
    assert status_when_seen == "RUNNING"
    assert event["status"] == "success" and event["job_status"] == "SUCCEEDED"
    assert "[ray job] scripted job done" in logged.lines


def test_polling_a_running_job_never_blocks_the_event_loop(hook, tmp_path):
    go = tmp_path / "go"
    sid = _submit(hook, "lag", f"--wait-for {go}")
    trigger = RayJobTrigger(sid, poll_interval=0.2)
    trigger._log = Lines()

    async def measure_lag(seconds: float) -> list[float]:
        """Lateness of 10 ms sleeps: a blocking call on the loop shows up as a late wake-up."""
        lags, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)
        return lags

    async def scenario():
        run = asyncio.ensure_future(anext(trigger.run()))
        await asyncio.sleep(0.5)  # connection set up, log tail open
        lags = await measure_lag(5.0)
        go.touch()
        await asyncio.wait_for(run, 120)
        return lags

    lags = asyncio.run(scenario())
    assert hook.job_status(sid) == "SUCCEEDED"
    assert len(lags) > 100
    print(f"loop lag max={max(lags) * 1000:.1f} ms over {len(lags)} samples")
    assert max(lags) < 0.050, f"max loop lag {max(lags) * 1000:.1f} ms"


def test_user_kill_stops_the_job_within_10s(hook, tmp_path):
    sid = _submit(hook, "kill", f"--wait-for {tmp_path / 'never'}")
    trigger = RayJobTrigger(sid, poll_interval=0.5)
    trigger._log = Lines()

    async def scenario():
        run = asyncio.ensure_future(anext(trigger.run()))
        await _until(lambda: hook.job_status(sid) == "RUNNING", 120)
        run.cancel()  # what the triggerer does, then it awaits on_kill()
        killed = time.monotonic()
        await trigger.on_kill()
        await _until(lambda: hook.job_status(sid) == "STOPPED", 10)
        return time.monotonic() - killed

    assert asyncio.run(scenario()) <= 10


def test_deadline_stops_the_job_and_reports_timeout(hook, tmp_path):
    sid = _submit(hook, "deadline", f"--wait-for {tmp_path / 'never'}")
    trigger = RayJobTrigger(sid, poll_interval=0.2, deadline=time.time() + 3)
    trigger._log = Lines()

    event = asyncio.run(asyncio.wait_for(anext(trigger.run()), 120)).payload
    assert event["status"] == "timeout"
    deadline = time.monotonic() + 10
    while hook.job_status(sid) != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hook.job_status(sid) == "STOPPED"
