"""Inference capture: rows land in the lake by hour, the request path never waits, a full
buffer drops and counts, and a writer killed mid-flush leaves only whole files."""

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.monitoring.capture import (
    CAPTURE_COLUMNS,
    CaptureConfig,
    CaptureWriter,
    captured_hours,
    hour_dir,
    read_captured,
)
from pipelines.usecases.predictive_maintenance.learner import LEARNER, SAMPLE_RECORDS

USE_CASE = "predictive_maintenance"
SCORE = LEARNER.score_field


def _writer(root, **config) -> CaptureWriter:
    settings = {"root": str(root), "use_case": USE_CASE, "flush_interval_s": 60.0, **config}
    return CaptureWriter(
        CaptureConfig(**settings),
        LEARNER.capture_fields,
        score_field=LEARNER.score_field,
        label_field=LEARNER.decision_field,
    )


def _answer(score: float) -> dict:
    return {SCORE: score, LEARNER.decision_field: score >= 0.5}


def _meta(request_id: str) -> dict:
    return {"request_id": request_id, "model_version": "3", "served_by": "stable"}


def _window() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)


def test_a_captured_request_is_its_inputs_answer_version_and_id_in_the_hours_partition(
    tmp_path,
):
    writer = _writer(tmp_path)
    assert writer.offer(SAMPLE_RECORDS, [_answer(0.1), _answer(0.9)], _meta("r-1"))
    writer.close()

    table = read_captured(str(tmp_path), USE_CASE, *_window())
    rows = table.to_pylist()
    assert [r["_request_id"] for r in rows] == ["r-1", "r-1"]
    assert [r["_score"] for r in rows] == [0.1, 0.9]
    assert [r["_label"] for r in rows] == ["False", "True"]
    assert {r["_model_version"] for r in rows} == {"3"}
    for row, sent in zip(rows, SAMPLE_RECORDS, strict=True):
        assert {k: row[k] for k in sent} == sent  # the inputs, named as in the lake's table
    assert set(CAPTURE_COLUMNS) <= set(table.column_names)
    (hour,) = captured_hours(str(tmp_path), USE_CASE)
    at = table.column("_captured_at")[0].as_py()
    assert hour == at.replace(minute=0, second=0, microsecond=0)
    assert writer.stats["written"] == 2 and writer.stats["files"] == 1


def test_reading_opens_only_the_hours_asked_for(tmp_path):
    writer = _writer(tmp_path)
    writer.offer(SAMPLE_RECORDS[:1], [_answer(0.2)], _meta("now"))
    writer.close()
    # An hour outside the window holding a file no Parquet reader can open: read_captured
    # would fail if it opened it.
    other = Path(hour_dir(str(tmp_path), USE_CASE, dt.datetime(2020, 1, 1, 5, tzinfo=dt.UTC)))
    other.mkdir(parents=True)
    (other / "part-broken.parquet").write_bytes(b"not parquet")

    table = read_captured(str(tmp_path), USE_CASE, *_window())
    assert table.column("_request_id").to_pylist() == ["now"]
    earlier = read_captured(
        str(tmp_path),
        USE_CASE,
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )
    assert earlier.num_rows == 0


def test_a_full_buffer_drops_and_counts_and_the_request_path_never_waits(tmp_path):
    release = threading.Event()
    measuring = threading.Event()

    def slow_fields(record):  # the writer is stuck (a slow disk, say)
        measuring.set()
        release.wait(30)
        return LEARNER.capture_fields(record)

    config = CaptureConfig(
        root=str(tmp_path), use_case=USE_CASE, batch_rows=4, max_rows=4, flush_interval_s=60
    )
    writer = CaptureWriter(config, slow_fields, score_field=SCORE)
    one = SAMPLE_RECORDS[:1]
    for i in range(4):  # fills the buffer: the writer takes these four and blocks on them
        assert writer.offer(one, [_answer(0.1)], _meta(f"a{i}"))
    assert measuring.wait(10), "the writer never started its flush"

    outcomes = []
    offering = threading.Thread(
        target=lambda: outcomes.extend(
            writer.offer(one, [_answer(0.1)], _meta(f"b{i}")) for i in range(10)
        )
    )
    offering.start()
    offering.join(5)
    assert not offering.is_alive(), "offer waited for the stuck writer"
    assert outcomes == [True] * 4 + [False] * 6  # four fit the emptied buffer, six dropped
    assert writer.stats["dropped"] == 6

    release.set()
    writer.close()
    ids = read_captured(str(tmp_path), USE_CASE, *_window()).column("_request_id").to_pylist()
    assert sorted(ids) == [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)]


def test_the_rate_samples_whole_requests(tmp_path):
    draws = iter([0.1, 0.6, 0.3, 0.9])
    config = CaptureConfig(root=str(tmp_path), use_case=USE_CASE, rate=0.5, flush_interval_s=60)
    writer = CaptureWriter(
        config, LEARNER.capture_fields, score_field=SCORE, sample=lambda: next(draws)
    )
    for i in range(4):
        writer.offer(SAMPLE_RECORDS, [_answer(0.1), _answer(0.2)], _meta(f"r{i}"))
    writer.close()
    ids = read_captured(str(tmp_path), USE_CASE, *_window()).column("_request_id").to_pylist()
    assert ids == ["r0", "r0", "r2", "r2"]
    assert writer.stats["not_sampled"] == 4


def test_a_record_the_learner_cannot_measure_is_counted_and_the_rest_are_written(tmp_path):
    def picky(record):
        if record["torque_nm"] > 60:
            raise ValueError("cannot measure")
        return LEARNER.capture_fields(record)

    config = CaptureConfig(root=str(tmp_path), use_case=USE_CASE, flush_interval_s=60)
    writer = CaptureWriter(config, picky, score_field=SCORE)
    writer.offer(SAMPLE_RECORDS, [_answer(0.1), _answer(0.9)], _meta("r"))
    writer.close()
    assert read_captured(str(tmp_path), USE_CASE, *_window()).num_rows == 1
    assert writer.stats["failed"] == 1 and writer.stats["written"] == 1


def test_bad_capture_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="rate"):
        CaptureConfig(root=str(tmp_path), use_case=USE_CASE, rate=1.5)
    with pytest.raises(ValueError, match="max_rows .* is below batch_rows"):
        CaptureConfig(root=str(tmp_path), use_case=USE_CASE, batch_rows=10, max_rows=5)


WRITER = textwrap.dedent(
    """
    import random, sys, time
    from pipelines.monitoring.capture import CaptureConfig, CaptureWriter
    from pipelines.usecases.predictive_maintenance.learner import LEARNER, SAMPLE_RECORDS

    config = CaptureConfig(root=sys.argv[1], use_case="predictive_maintenance",
                           batch_rows=2000, max_rows=100_000, flush_interval_s=0.01)
    writer = CaptureWriter(config, LEARNER.capture_fields, score_field=LEARNER.score_field)
    answer = {LEARNER.score_field: 0.5, LEARNER.decision_field: True}
    i = 0
    while True:
        records = [{**SAMPLE_RECORDS[0], "torque_nm": random.random()} for _ in range(200)]
        writer.offer(records, [answer] * 200, {"request_id": str(i)})
        i += 1
        if i % 5 == 0:
            print(writer.stats["files"], flush=True)
        time.sleep(0.001)
    """
)


def _capture_then_sigkill(root: Path, after: int, delay: float) -> None:
    """Run ``WRITER`` and SIGKILL it ``delay`` seconds after it wrote ``after`` files."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[4])}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        files = 0
        deadline = time.monotonic() + 60
        while files < after and time.monotonic() < deadline:  # well into its flushes
            files = int(process.stdout.readline() or 0)
        assert files >= after, "the capturing process stalled"
        time.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.06, 0.09, 0.12])
def test_a_writer_killed_mid_flush_leaves_only_whole_files(tmp_path, delay):
    """SIGKILL the process that captures, while it writes (where in a flush it lands is
    chance: five kills at different points): every file a reader lists is whole Parquet, and
    what was captured is a prefix of what was offered (only the tail that was queued or being
    written is lost). A writer that writes Parquet straight to the final name was caught by
    some of these kills, not by all, and not on every run."""
    _capture_then_sigkill(tmp_path, 2, delay)
    files = sorted(tmp_path.rglob("part-*.parquet"))
    assert files
    for path in files:
        pq.read_table(path)  # a torn file would fail here
    ids = read_captured(str(tmp_path), USE_CASE, *_window()).column("_request_id").to_pylist()
    requests = sorted({int(i) for i in ids})
    assert requests == list(range(len(requests)))  # a prefix: no hole, nothing after a loss
    assert all(ids.count(str(r)) == 200 for r in requests)  # no request cut in half
