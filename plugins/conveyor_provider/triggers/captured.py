"""Event-driven monitoring: fire when an hour of a use case's served traffic is complete.

An ``AssetWatcher`` on the use case's served-traffic asset runs this trigger on the
triggerer; each event it yields is an asset event, which starts the monitoring DAG for that
hour (``AssetOrTimeSchedule``: the DAG's clock schedule stays as the safety net). An hour is
complete once it has ended and ``settle_s`` passed (every replica flushes within seconds).
Both default to the triggerer's settings (``CONVEYOR_CAPTURE_POLL_S``,
``CONVEYOR_CAPTURE_SETTLE_S``: a minute each).

The hours already announced are remembered in the asset's state store (``announced_until``),
in Airflow's metadata DB, so a restarted or moved triggerer announces each hour once. The
event is yielded before the mark is moved: after a crash between the two, an hour may be
announced twice (the monitoring pass is idempotent), never skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

WATERMARK = "announced_until"


class CapturedHoursTrigger(BaseEventTrigger):
    """Yield ``{"use_case", "hours"}`` for each batch of newly completed captured hours of
    ``use_case`` (``pipelines.monitoring.capture`` layout), polling every ``poll_interval``
    seconds, forever. ``root`` is the lake; it, ``poll_interval`` and ``settle_s`` left None
    (the DAGs' choice) are the settings', read on the triggerer, where the trigger runs, not
    where the DAG was parsed."""

    def __init__(
        self,
        use_case: str,
        root: str | None = None,
        poll_interval: float | None = None,
        settle_s: float | None = None,
    ):
        super().__init__()
        self.use_case = use_case
        self.root = root
        self.poll_interval = poll_interval
        self.settle_s = settle_s
        self._local_mark: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "use_case": self.use_case,
                "root": self.root,
                "poll_interval": self.poll_interval,
                "settle_s": self.settle_s,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Imports, settings and listings happen in a thread: the triggerer's event loop also
        # runs every deferred task's trigger (Ray jobs streaming their logs).
        settings = await asyncio.to_thread(_settings)
        root = self.root or settings.lake
        poll = settings.capture_poll_s if self.poll_interval is None else self.poll_interval
        settle = settings.capture_settle_s if self.settle_s is None else self.settle_s
        while True:
            mark = await self._watermark()
            after = dt.datetime.fromisoformat(mark) if mark else None
            now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settle)
            hours = await asyncio.to_thread(_completed_hours, root, self.use_case, after, now)
            if hours:
                announced = [h.isoformat() for h in hours]
                self.log.info("served traffic of %s complete for %s", self.use_case, announced)
                yield TriggerEvent({"use_case": self.use_case, "hours": announced})
                await self._set_watermark(announced[-1])
            await asyncio.sleep(poll)

    def _store(self):
        # Set by the triggerer for a trigger that watches an asset; absent when run alone.
        return getattr(self, "asset_state_store", None)

    async def _watermark(self) -> str | None:
        store = self._store()
        return await store.aget(WATERMARK) if store is not None else self._local_mark

    async def _set_watermark(self, hour: str) -> None:
        store = self._store()
        if store is not None:
            await store.aset(WATERMARK, hour)
        else:
            self._local_mark = hour


def _settings():
    from pipelines.settings import get_settings

    return get_settings()


def _completed_hours(root: str, use_case: str, after, now) -> list[dt.datetime]:
    from pipelines.monitoring.capture import completed_hours

    return completed_hours(root, use_case, after, now)
