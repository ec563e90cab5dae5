"""A steady request load for the rollout tests and the rollout benchmark, sent from its own
process."""

import multiprocessing
import time

import httpx
import numpy as np

from pipelines.usecases.predictive_maintenance.learner import SAMPLE_RECORDS


class Load:
    """Requests at a steady rate from a separate process, every answer recorded as
    (t, status, version, seconds); t is ``time.perf_counter()``, which is system-wide on Linux.
    ``clients`` concurrent clients (threads of that process, each with its own connection)
    share the ``rate``, so requests overlap as they do from many users.

    A process, not a thread: a thread would share the GIL with the rollout code under test,
    and the client's own pauses would show up as server latency."""

    def __init__(self, endpoint: str, rate: float = 20.0, clients: int = 1):
        self.endpoint, self.rate, self.clients = endpoint, rate, clients
        self.results: list = []

    def __enter__(self):
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._queue = context.Queue()
        self._process = context.Process(
            target=_send_at_rate,
            args=(self.endpoint, self.rate, self.clients, self._stop, self._queue),
            daemon=True,
        )
        self._process.start()
        started = self._queue.get(timeout=60)  # the client is up before the caller goes on
        assert started == "ready"
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.results = [tuple(r) for r in self._queue.get(timeout=120)]
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()

    def since(self, t0: float, t1: float = float("inf")) -> list:
        return [r for r in self.results if t0 <= r[0] < t1]


def _send_at_rate(endpoint: str, rate: float, clients: int, stop, queue) -> None:
    import threading

    results: list = []  # list.append is atomic: the client threads share it
    body = {"records": SAMPLE_RECORDS}
    connections = [httpx.Client(timeout=30.0) for _ in range(clients)]
    for client in connections:
        client.get(f"{endpoint}/healthz")

    def send(client: httpx.Client, offset: float) -> None:
        next_at = time.perf_counter() + offset
        while not stop.is_set():
            time.sleep(max(0.0, next_at - time.perf_counter()))
            started = time.perf_counter()
            try:
                response = client.post(f"{endpoint}/predict", json=body)
                version = response.headers.get("x-conveyor-model-version")
                status = response.status_code
            except httpx.HTTPError as exc:
                status, version = f"error: {exc!r}", None
            results.append((started, status, version, time.perf_counter() - started))
            next_at += clients / rate

    # Each client starts a fraction of a period after the previous: steady, not in bursts.
    threads = [
        threading.Thread(target=send, args=(c, i / rate), daemon=True)
        for i, c in enumerate(connections)
    ]
    queue.put("ready")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in connections:
        client.close()
    queue.put(sorted(results))


def p99(results: list) -> float:
    return float(np.percentile([r[3] for r in results], 99))


def failures(results: list) -> list:
    return [r for r in results if r[1] != 200]
