"""Inference capture: what an endpoint was asked and what it answered, kept in the lake so the
monitoring pipeline can validate served traffic and compare it with the training data.

Layout: ``<lake>/_served/<use case>/date=YYYY-MM-DD/hour=HH/part-<time>-<id>.parquet``, one
file per flush and hour (``pipelines.data.lake.append_part``: all of a file or nothing).
Each row holds the use case's captured fields (``Learner.capture_fields``: the request's inputs
for tabular records; measurements, and sometimes the image, for images) and the capture's own
columns, all named with a leading underscore (``CAPTURE_COLUMNS``) so that a suite written
for the lake's table runs on served traffic once they are dropped.

Why a writer thread and a bounded buffer: the request path only appends to a deque under a
lock (no I/O, no conversion); a background thread turns what is queued into Parquet every
``flush_interval_s`` or every ``batch_rows`` rows. When the buffer is full the new records are
dropped and counted (``stats["dropped"]``), never waited for. A process killed mid-flush loses
what was queued and not yet written (at most ``max_rows`` plus the batch being written),
never a written file.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from itertools import chain

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.data.lake import append_part

log = logging.getLogger(__name__)

SERVED = "_served"
"""The lake folder of captured traffic (outside every table's folder, like ``_quarantine``)."""
CAPTURE_COLUMNS = (
    "_request_id",
    "_row",
    "_captured_at",
    "_model_version",
    "_served_by",
    "_score",
    "_label",
)
"""The capture's own columns: request id (also the answer's ``X-Request-Id`` header) and the
record's position in the request (together the key feedback labels join on,
``pipelines.monitoring.feedback``), UTC time, the version that answered, how it was picked
(stable, canary, pinned), and the prediction's score and decision."""


CAPTURED_AT = pa.timestamp("us", tz="UTC")

_Request = tuple[list[dict], list[dict], float, dict]
"""A queued request: its records, their predictions, when it was answered (seconds since the
epoch), and the capture columns its records share."""


class CaptureConfig(BaseModel):
    """How an endpoint captures (``RouterArgs.capture`` plus the use case; off when absent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str = Field(min_length=1, description="The lake root (a path or an fsspec URL)")
    use_case: str = Field(min_length=1)
    rate: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of requests captured (all of their records)"
    )
    batch_rows: int = Field(512, ge=1, description="Rows that trigger a flush before the interval")
    max_rows: int = Field(
        8192, ge=1, description="Rows the buffer holds; more are dropped and counted"
    )
    flush_interval_s: float = Field(2.0, gt=0.0)

    @model_validator(mode="after")
    def _batch_fits(self):
        if self.max_rows < self.batch_rows:
            raise ValueError(f"max_rows ({self.max_rows}) is below batch_rows ({self.batch_rows})")
        return self


def served_dir(root: str, use_case: str) -> str:
    return f"{str(root).rstrip('/')}/{SERVED}/{use_case}"


def hour_dir(root: str, use_case: str, hour: dt.datetime) -> str:
    return f"{served_dir(root, use_case)}/date={hour:%Y-%m-%d}/hour={hour:%H}"


class CaptureWriter:
    """Buffers captured records and writes them to the lake from one background thread.

    ``offer`` is what the request path calls: it never blocks on I/O and never raises.
    ``fields`` turns one queued record into its captured columns (``Learner.capture_fields``);
    it runs in the writer thread, so measuring an image costs the request nothing.
    ``score_field`` and ``label_field`` name the prediction's score and decision (the
    learner's); a regressor has no decision (``""``). ``clock`` stamps each request (seconds
    since the epoch; the hour partition follows it)."""

    def __init__(
        self,
        config: CaptureConfig,
        fields: Callable[[dict], dict] = dict,
        *,
        score_field: str = "probability",
        label_field: str = "",
        sample: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self._fields = fields
        self._score, self._label = score_field, label_field
        self._sample = sample
        self._clock = clock
        self._queue: deque[_Request] = deque()
        self._rows = 0  # records queued (a request is one entry of the queue)
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self.stats: Counter = Counter()
        self._thread = threading.Thread(target=self._run, name="conveyor-capture", daemon=True)
        self._thread.start()

    def offer(self, records: list[dict], predictions: list[dict], meta: dict) -> bool:
        """Queue one answered request (its records, their predictions, and the capture columns
        they share: request id, version, served_by); False when it was not captured (not
        sampled, or the buffer is full: counted in ``stats``). The request is queued as it is,
        one entry for all its records: the request path does no per-record work."""
        n = len(records)
        self.stats["requests"] += 1
        if self._stopped.is_set() or self._sample() >= self.config.rate:
            self.stats["not_sampled"] += n
            return False
        if n != len(predictions):  # a bug upstream; the request was answered all the same
            self.stats["failed"] += n
            log.error("capture: %d records but %d predictions", n, len(predictions))
            return False
        entry = (records, predictions, self._clock(), meta)
        with self._lock:
            if self._rows + n > self.config.max_rows:
                self.stats["dropped"] += n
                return False
            self._queue.append(entry)
            self._rows += n
            queued = self._rows
        self.stats["queued"] += n
        if queued >= self.config.batch_rows:
            self._wake.set()
        return True

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write what is queued now (one file per hour it spans); the rows written. A failed
        write is logged and its rows counted in ``stats["failed"]``: capture never takes the
        endpoint down."""
        with self._flushing:
            with self._lock:
                items = list(self._queue)
                self._queue.clear()
                self._rows = 0
            if not items:
                return 0
            written = 0
            for hour, rows in _by_hour(items).items():
                try:
                    table = self._table(rows)
                    if table.num_rows == 0:
                        continue
                    name = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
                    append_part(hour_dir(self.config.root, self.config.use_case, hour), table, name)
                except Exception as exc:  # a full disk, a bucket gone: counted, logged
                    lost = sum(len(request[0]) for request in rows)
                    self.stats["failed"] += lost
                    log.error("capture: %d rows for %s not written: %r", lost, hour, exc)
                    continue
                written += table.num_rows
                self.stats["files"] += 1
            self.stats["written"] += written
            return written

    def _table(self, requests: list[_Request]) -> pa.Table:
        """The captured rows of ``requests``, built column by column (one Python pass over the
        records, the rest in Arrow)."""
        fields: list[dict] = []
        request_ids, positions, stamps, versions, served_by, scores, labels = ([] for _ in range(7))
        score, label = self._score, self._label
        for records, predictions, at, meta in requests:
            micros = int(at * 1_000_000)
            for row, (record, prediction) in enumerate(zip(records, predictions, strict=True)):
                try:
                    fields.append(self._fields(record))
                except Exception as exc:  # one record the learner cannot measure: it alone is lost
                    self.stats["failed"] += 1
                    log.warning("capture: a record was not captured: %r", exc)
                    continue
                request_ids.append(meta.get("request_id"))
                positions.append(row)
                stamps.append(micros)
                versions.append(meta.get("model_version"))
                served_by.append(meta.get("served_by"))
                scores.append(prediction[score])
                decision = prediction.get(label) if label else None
                labels.append(None if decision is None else str(decision))
        names = dict.fromkeys(chain.from_iterable(fields))  # a column any row has
        columns = {name: [row.get(name) for row in fields] for name in names}
        columns["_request_id"] = pa.array(request_ids, pa.string())
        columns["_row"] = pa.array(positions, pa.int64())
        columns["_captured_at"] = pa.array(stamps, pa.int64()).cast(CAPTURED_AT)
        columns["_model_version"] = pa.array(versions, pa.string())
        columns["_served_by"] = pa.array(served_by, pa.string())
        columns["_score"] = pa.array(scores, pa.float64())
        columns["_label"] = pa.array(labels, pa.string())
        return pa.table(columns)

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking records, write what is queued, and stop the thread."""
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout)
        self.flush()


def _by_hour(requests: Iterable[_Request]) -> dict[dt.datetime, list[_Request]]:
    groups: dict[int, list[_Request]] = {}
    for request in requests:
        groups.setdefault(int(request[2] // 3600), []).append(request)
    return {dt.datetime.fromtimestamp(hour * 3600, dt.UTC): group for hour, group in groups.items()}


def captured_hours(root: str, use_case: str) -> list[dt.datetime]:
    """Every hour with captured traffic, oldest first."""
    fs, base = fsspec.core.url_to_fs(served_dir(root, use_case))
    hours = []
    for folder in fs.glob(f"{base.rstrip('/')}/date=*/hour=*"):
        day = folder.split("date=")[-1].split("/")[0]
        hour = folder.rsplit("hour=", 1)[-1]
        hours.append(dt.datetime.fromisoformat(f"{day}T{hour}:00:00+00:00"))
    return sorted(hours)


def completed_hours(
    root: str, use_case: str, after: dt.datetime | None, now: dt.datetime
) -> list[dt.datetime]:
    """Hours with captured traffic that began after ``after`` (all, when None) and had ended
    by ``now``, oldest first: what the event-driven monitoring announces."""
    return [
        hour
        for hour in captured_hours(root, use_case)
        if (after is None or hour > after) and hour + dt.timedelta(hours=1) <= now
    ]


def read_captured(
    root: str, use_case: str, start: dt.datetime, end: dt.datetime, columns=None
) -> pa.Table:
    """The traffic captured in ``[start, end)`` (UTC): only those hours' folders are opened,
    then rows outside the interval are filtered out. Files whose batches left a column all
    empty are merged by type promotion."""
    first = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    fs, _ = fsspec.core.url_to_fs(str(root))
    tables = []
    for hour in captured_hours(root, use_case):
        if not first <= hour < end:
            continue
        folder = fsspec.core.url_to_fs(hour_dir(root, use_case, hour))[1]
        for path in sorted(fs.glob(f"{folder}/part-*.parquet")):
            with fs.open(path, "rb") as handle:
                tables.append(pq.read_table(handle, columns=columns))
    if not tables:
        return pa.table({name: pa.array([], pa.null()) for name in columns or CAPTURE_COLUMNS})
    table = pa.concat_tables(tables, promote_options="permissive")
    if "_captured_at" not in table.column_names:
        return table
    at = table.column("_captured_at")
    low, high = (pa.scalar(t.astimezone(dt.UTC), type=at.type) for t in (start, end))
    return table.filter(pc.and_(pc.greater_equal(at, low), pc.less(at, high)))
