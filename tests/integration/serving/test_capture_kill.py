"""Inference capture when the router replica that captures is SIGKILLed under traffic, on a
real Ray Serve: Serve starts a new router, and the lake holds no torn file and no request
twice; what is missing is only the tail the killed router had not flushed, within its
buffer's bound."""

import datetime as dt
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from conveyor.processes import replica_processes, wait_until
from pipelines.serving.rollout import deploy
from pipelines.serving.routing import REQUEST_ID_HEADER
from pipelines.usecases.predictive_maintenance.learner import SAMPLE_RECORDS

pytestmark = pytest.mark.integration

APP = f"pm-capture-kill-{uuid.uuid4().hex[:6]}"
# Small batches: the router writes a file every few requests, so the kill lands among flushes.
CAPTURE = {"rate": 1.0, "batch_rows": 8, "max_rows": 2048, "flush_interval_s": 0.5}


def _router_pids(app: str) -> set[int]:
    return {proc.pid for proc in replica_processes(app, "Router")}


def test_a_killed_router_loses_only_its_unflushed_tail_and_tears_no_file(
    versions, target_for, tmp_path
):
    lake = tmp_path / "lake"
    target = target_for(APP, router={"capture": {"root": str(lake), **CAPTURE}})
    deploy(target, versions["a"])
    (router,) = _router_pids(APP)
    sent: list[str] = []
    answered: list[tuple[str, int]] = []  # (request id, the router pid at the time), in order
    phase = {"router": router}
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                request_id = uuid.uuid4().hex
                sent.append(request_id)
                try:
                    answer = client.post(
                        f"{target.endpoint}/predict",
                        json={"records": SAMPLE_RECORDS},
                        headers={REQUEST_ID_HEADER: request_id},
                    )
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if answer.status_code == 200:
                    answered.append((request_id, phase["router"]))
                else:
                    time.sleep(0.05)

    client = threading.Thread(target=traffic, daemon=True)
    started = dt.datetime.now(dt.UTC)  # what was captured before is the deploy's own checks
    client.start()
    try:
        wait_until(lambda: len(answered) >= 150, "traffic answered and captured", 60)
        phase["router"] = None  # answers from here on may come from either router
        psutil.Process(router).kill()
        wait_until(lambda: _router_pids(APP) - {router}, "Serve started a new router", 120)
        (new,) = _router_pids(APP) - {router}
        phase["router"] = new
        after = len(answered)
        wait_until(lambda: len(answered) >= after + 50, "the new router answering", 120)
    finally:
        stop.set()
        client.join(30)
    time.sleep(3 * CAPTURE["flush_interval_s"] + 1)  # the new router's last flush

    files = sorted(Path(lake).rglob("*.parquet"))
    tables = [pq.read_table(f) for f in files]  # a torn file would not read
    captured: dict[str, int] = {}
    for table in tables:
        for row in table.select(["_request_id", "_captured_at"]).to_pylist():
            if row["_captured_at"] < started:
                continue
            captured[row["_request_id"]] = captured.get(row["_request_id"], 0) + 1
    rows = len(SAMPLE_RECORDS)
    assert set(captured) <= set(sent), "captured rows of requests nobody sent"
    assert set(captured.values()) == {rows}, "a request captured twice or in part"
    # Captured without an answer: only the request in flight when the router died.
    assert len(set(captured) - {request_id for request_id, _ in answered}) <= 1

    # The killed router's answers: a captured prefix, then the tail it had not flushed.
    before = [request_id in captured for request_id, pid in answered if pid == router]
    kept = before.index(False) if False in before else len(before)
    assert all(before[:kept]) and not any(before[kept:]), "a hole before the unflushed tail"
    assert (len(before) - kept) * rows <= CAPTURE["max_rows"]
    assert kept >= len(before) // 2, f"only {kept} of {len(before)} answers were flushed"
    # The new router's answers are all there.
    assert all(request_id in captured for request_id, pid in answered if pid == new)
