"""CapturedHoursTrigger on a real folder of captured traffic: completed hours are announced
once, the hour still running is not, and the mark kept in the asset's state store stops a
new trigger (a restarted triggerer) from announcing them again."""

import asyncio
import datetime as dt

import pyarrow as pa

from conveyor_provider.triggers.captured import WATERMARK, CapturedHoursTrigger
from pipelines.data.lake import append_part
from pipelines.monitoring.capture import hour_dir

USE_CASE = "predictive_maintenance"


class StateStore:
    """The asset state store's async accessors, kept in a dict (Airflow keeps it in its DB)."""

    def __init__(self):
        self.values = {}

    async def aget(self, key, default=None):
        return self.values.get(key, default)

    async def aset(self, key, value):
        self.values[key] = value


def _this_hour() -> dt.datetime:
    """Read when the test runs, not when the module is imported: a suite is longer than an
    hour's remainder, and the hour still running must be the trigger's own."""
    return dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _captured(root, now: dt.datetime, hours_ago: int) -> dt.datetime:
    hour = now - dt.timedelta(hours=hours_ago)
    append_part(hour_dir(str(root), USE_CASE, hour), pa.table({"_score": [0.1]}), "x")
    return hour


def _events(trigger, seconds=0.5) -> list[dict]:
    """What the trigger yields while it runs for ``seconds`` (the triggerer keeps pulling
    events, as here, until it cancels the trigger)."""
    events = []

    async def collect():
        async for event in trigger.run():
            events.append(event.payload)

    try:
        asyncio.run(asyncio.wait_for(collect(), seconds))
    except TimeoutError:
        pass
    return events


def _trigger(root, store) -> CapturedHoursTrigger:
    trigger = CapturedHoursTrigger(USE_CASE, root=str(root), poll_interval=0.05, settle_s=0)
    trigger.asset_state_store = store  # what the triggerer sets for a watcher's trigger
    return trigger


def test_completed_hours_are_announced_once_across_triggerer_restarts(tmp_path):
    store, now = StateStore(), _this_hour()
    five, three = _captured(tmp_path, now, 5), _captured(tmp_path, now, 3)
    _captured(tmp_path, now, 0)  # the hour still running
    events = _events(_trigger(tmp_path, store))
    assert events == [{"use_case": USE_CASE, "hours": [five.isoformat(), three.isoformat()]}]
    assert store.values[WATERMARK] == three.isoformat()

    assert _events(_trigger(tmp_path, store)) == []  # a restarted triggerer: nothing new
    two = _captured(tmp_path, now, 2)
    assert _events(_trigger(tmp_path, store)) == [
        {"use_case": USE_CASE, "hours": [two.isoformat()]}
    ]


def test_the_trigger_serializes_to_what_the_triggerer_rebuilds():
    trigger = CapturedHoursTrigger(USE_CASE)
    path, kwargs = trigger.serialize()
    assert path == "conveyor_provider.triggers.captured.CapturedHoursTrigger"
    assert CapturedHoursTrigger(**kwargs).serialize() == (path, kwargs)
    assert kwargs["root"] is None  # the lake is the triggerer's settings', read where it runs


def test_lake_poll_and_settle_come_from_the_triggerers_settings(tmp_path, monkeypatch):
    """As the DAGs build it (no root, interval or settle given), the trigger reads them where
    it runs: here a two-hour settle keeps the hour that ended an hour ago back, and a short
    poll sees an hour captured after it started."""
    monkeypatch.setenv("CONVEYOR_LAKE_ROOT", str(tmp_path))
    monkeypatch.setenv("CONVEYOR_CAPTURE_POLL_S", "0.05")
    monkeypatch.setenv("CONVEYOR_CAPTURE_SETTLE_S", "7200")
    now = _this_hour()
    _captured(tmp_path, now, 1)  # ended an hour ago at most: not settled
    trigger = CapturedHoursTrigger(USE_CASE)
    trigger.asset_state_store = StateStore()
    events = []

    async def collect():
        async for event in trigger.run():
            events.append(event.payload)

    async def capture_later():
        await asyncio.sleep(0.2)  # after the trigger's first look
        return _captured(tmp_path, now, 3)

    async def both():
        task = asyncio.create_task(collect())
        later = await capture_later()
        await asyncio.sleep(0.5)
        task.cancel()
        return later

    three = asyncio.run(both())
    assert events == [{"use_case": USE_CASE, "hours": [three.isoformat()]}]
