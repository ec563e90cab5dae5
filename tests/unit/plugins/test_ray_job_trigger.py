"""RayJobTrigger's decisions on recorded job states (the real Jobs API is in integration)."""

import asyncio
import importlib

import pytest

from conveyor_provider.hooks.ray_jobs import RayJobsHook
from conveyor_provider.triggers.ray_job import RayJobTrigger


def test_serialize_round_trips_every_constructor_argument():
    trigger = RayJobTrigger(
        "sub-1", ray_conn_id="ray_prod", poll_interval=0.5, deadline=1e9, stream_logs=False
    )
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "submission_id": "sub-1",
        "ray_conn_id": "ray_prod",
        "poll_interval": 0.5,
        "deadline": 1e9,
        "stream_logs": False,
    }


class RecordedJobs:
    """An async client replaying job states; fails the test if the trigger stops the job
    when it should not."""

    def __init__(self, states, message=""):
        self.states = list(states)
        self.message = message
        self.stopped = False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def info(self, submission_id):
        status = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return None if status is None else {"status": status, "message": self.message}

    async def stop(self, submission_id):
        self.stopped = True
        return True

    async def tail(self, submission_id):
        yield "line one\nline "
        yield "two\n"


def _run(trigger, jobs, monkeypatch):
    async def client(self):
        return jobs

    monkeypatch.setattr(RayJobTrigger, "_client", client)
    # The sync client must never be used on the triggerer's loop.
    monkeypatch.setattr(RayJobsHook, "client", property(lambda self: pytest.fail("sync client")))

    async def first_event():
        return await anext(trigger.run())

    return asyncio.run(first_event()).payload


@pytest.mark.parametrize(
    ("final", "status"), [("SUCCEEDED", "success"), ("FAILED", "error"), ("STOPPED", "error")]
)
def test_every_terminal_state_fires_one_event(monkeypatch, final, status):
    jobs = RecordedJobs(["PENDING", "RUNNING", final], message="exit code 1: boom")
    event = _run(RayJobTrigger("sub-1", poll_interval=0.01), jobs, monkeypatch)
    assert event == {
        "status": status,
        "submission_id": "sub-1",
        "job_status": final,
        "message": "exit code 1: boom",
    }
    assert not jobs.stopped


def test_a_passed_deadline_stops_the_job_and_reports_a_timeout(monkeypatch):
    jobs = RecordedJobs(["RUNNING"])
    event = _run(RayJobTrigger("sub-1", poll_interval=0.01, deadline=0.0), jobs, monkeypatch)
    assert event["status"] == "timeout" and jobs.stopped


def test_an_unknown_job_is_an_error_not_a_hang(monkeypatch):
    event = _run(RayJobTrigger("nope", poll_interval=0.01), RecordedJobs([None]), monkeypatch)
    assert event["status"] == "error" and "does not exist" in event["message"]


def test_output_is_logged_line_by_line(monkeypatch):
    lines = []

    class Collect:
        def info(self, fmt, *args):
            lines.append(fmt % args)

        warning = info

    trigger = RayJobTrigger("sub-1", poll_interval=0.01)
    trigger._log = Collect()
    _run(trigger, RecordedJobs(["RUNNING", "RUNNING", "SUCCEEDED"]), monkeypatch)
    assert lines == ["[ray job] line one", "[ray job] line two"]


def test_on_kill_stops_the_job(monkeypatch):
    jobs = RecordedJobs(["RUNNING"])

    async def client(self):
        return jobs

    monkeypatch.setattr(RayJobTrigger, "_client", client)
    asyncio.run(RayJobTrigger("sub-1").on_kill())
    assert jobs.stopped
