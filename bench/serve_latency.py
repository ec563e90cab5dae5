"""Serving benchmarks, side by side in one run on one machine:

1. latency (p50, p99; one client, sequential) and maximum throughput (16 concurrent clients)
   of the Ray Serve endpoint (router + predictor, as deployed by ``pipelines.serving.rollout``) vs a
   plain FastAPI app under uvicorn serving the same model directory with the same validation;
2. batched (``max_batch_size=32``, adaptive 2 ms wait) vs unbatched (``max_batch_size=1``)
   predictor throughput and p99 at saturation (64 concurrent clients, one record each), with
   each side's router CPU per request and how busy the router was, and what batching saves
   where it applies: the scoring call alone, 32 records at once vs 32 calls of one, in this
   process (and one record scored from a DataFrame vs from ``record_columns``);
3. rollouts under a steady load (20 requests/s): p99 in each rollout's window (the call plus
   3 s) over p99 outside the windows, with the default two predictor slots (the new version
   loads into the idle slot, in place) vs one slot (each rollout starts a new slot, as
   every rollout did before slots). Three versions are cycled, so every rollout loads one;
4. inference capture at 100% (the default) vs off: p50 of one client, and throughput and
   p50 at 16 clients.

Rounds alternate between the two sides, so drift hits both. Prints ratios; not a test.
Run from the repository root:
``python -m bench.serve_latency [--only latency throughput batching rollouts capture]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

from conveyor.processes import free_port
from pipelines.usecases.predictive_maintenance.learner import LEARNER, SAMPLE_RECORDS

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Body:
    """One request's body: JSON, or raw bytes of a content type (an image file)."""

    json: dict | None = None
    data: bytes = b""
    content_type: str = "application/json"

    def for_httpx(self) -> dict:
        if self.json is not None:
            return {"json": self.json}
        return {"content": self.data, "headers": {"content-type": self.content_type}}

    def for_aiohttp(self) -> dict:
        if self.json is not None:
            return {"json": self.json}
        return {"data": self.data, "headers": {"content-type": self.content_type}}


ONE = Body(json={"records": SAMPLE_RECORDS[:1]})


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))


def sequential(url: str, n: int, body: Body = ONE) -> list[float]:
    out = []
    request = body.for_httpx()
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            response = client.post(url, **request)
            out.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return out


def _get_latencies(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            out.append(time.perf_counter() - started)
    return out


async def _saturate(
    url: str, clients: int, seconds: float, body: Body
) -> tuple[float, list[float]]:
    """``clients`` keep-alive connections, each sending its next request when the last one
    answered. aiohttp, not httpx: at 64 connections httpx's own CPU use, on a small machine,
    slowed the servers it measured (docs/perf-log.md)."""
    import aiohttp

    latencies: list[float] = []
    request = body.for_aiohttp()
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker():
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(url, **request) as response:
                    body = await response.read()
                latencies.append(time.perf_counter() - started)
                assert response.status == 200, body[:200]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def saturate(url: str, clients: int, seconds: float, body: Body = ONE) -> tuple[float, list[float]]:
    return asyncio.run(_saturate(url, clients, seconds, body))


def _rollout_ratio(target, versions: list[str]) -> tuple[float, int, float, float]:
    """One rollout of ``target`` to the next of ``versions`` under load: (p99 during / p99
    steady, failed requests, p99 steady, p99 during)."""
    from bench.load import Load, failures, p99
    from pipelines.serving.rollout import current_routing, deploy

    stable = current_routing(target).stable
    version = versions[(versions.index(stable) + 1) % len(versions)]
    with Load(target.endpoint, rate=20) as load:
        time.sleep(5)
        started = time.perf_counter()
        deploy(target, version)
        ended = time.perf_counter() + 3
        time.sleep(6)
    steady, during = (
        p99(load.since(0, started) + load.since(ended)),
        p99(load.since(started, ended)),
    )
    return during / steady, len(failures(load.results)), steady, during


def _model(work: Path, tracking_uri: str) -> tuple[str, Path]:
    from pipelines.data import lake
    from pipelines.ml.features import Scaler
    from pipelines.ml.model import save_model_dir
    from pipelines.ml.registry import register_training
    from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
    from pipelines.usecases.predictive_maintenance.ingest import ingest_day
    from ray_jobs.train import run_local

    day = dt.date(2026, 11, 1)
    ingest_day(day, str(work / "lake"), generator=GeneratorConfig(machines=10, minutes=720))
    frame = lake.read_partition(str(work / "lake"), day, table="telemetry")
    scaler = Scaler.fit(LEARNER.features(frame), LEARNER.feature_names)
    config = {
        "use_case": "predictive_maintenance",
        "files": lake.partition_files(str(work / "lake"), [day], table="telemetry"),
        "scaler": scaler.as_dict(),
        "epochs": 2,
        "batch_size": 256,
        "lr": 3e-3,
        "hidden": 64,
        "seed": 0,
        "pos_weight": 5.0,
    }
    state = run_local(config)["state_dict"]
    meta = {"hidden": 64, "threshold": 0.5}
    directory = save_model_dir(work / "model", state, scaler, meta, LEARNER)
    result = {"model_dir": str(directory), "train_dates": [day.isoformat()], "metrics": {}}
    version = register_training(tracking_uri, "bench_serving", result, "bench").version
    return version, directory


def _more_versions(tracking_uri: str, model_dir: Path, n: int) -> list[str]:
    """``n`` more registered versions of the same weights: each one is loaded afresh."""
    from pipelines.ml.registry import register_training

    result = {"model_dir": str(model_dir), "train_dates": ["2026-11-01"], "metrics": {}}
    return [
        register_training(tracking_uri, "bench_serving", result, f"bench-{i}").version
        for i in range(n)
    ]


def _scoring_gains(model_dir: Path, rounds: int = 200) -> tuple[float, float]:
    """The model's share of a request, in this process: (32 records in one call over 32 calls
    of one, the most batching can give; one record from a DataFrame, as scoring was built
    until 2026-12-01, over one from ``record_columns``, as ``Predictor._score`` does)."""
    import pandas as pd

    from pipelines.ml.model import LoadedModel

    record_columns = LEARNER.record_columns
    model = LoadedModel(model_dir, LEARNER)
    rows = (SAMPLE_RECORDS * 32)[:32]
    times = {"one": [], "batch": [], "frame": []}
    for _ in range(rounds):
        started = time.perf_counter()
        for row in rows:
            model.score(record_columns([row]))
        times["one"].append(time.perf_counter() - started)
        started = time.perf_counter()
        model.score(record_columns(rows))
        times["batch"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for row in rows:
            model.score(pd.DataFrame([row]))
        times["frame"].append(time.perf_counter() - started)
    one, batch, frame = (statistics.median(times[k]) for k in ("one", "batch", "frame"))
    return one / batch, frame / one


def _baseline(
    model_dir: Path, port: int, use_case: str = "predictive_maintenance"
) -> subprocess.Popen:
    env = {**os.environ, "BENCH_MODEL_DIR": str(model_dir), "BENCH_USE_CASE": use_case}
    argv = [sys.executable, "-m", "uvicorn", "bench.fastapi_baseline:app", "--port", str(port)]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    for _ in range(120):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the FastAPI baseline did not start")


def latency(urls: dict[str, str], floor_url: str) -> None:
    print("== latency, one client, sequential (5 rounds x 300 requests, alternating)")
    rounds = {name: [] for name in urls}
    for _ in range(5):
        for name, url in urls.items():
            rounds[name].append(sequential(url, 300))
    p = {name: _percentiles([x for r in runs for x in r]) for name, runs in rounds.items()}
    for name, (p50, p99) in p.items():
        ms = f"p50={p50 * 1000:6.2f} ms  p99={p99 * 1000:6.2f} ms"
        each = " ".join(f"{b / a:.2f}" for a, b in map(_percentiles, rounds[name]))
        print(f"{name:8s} {ms}  p99/p50={p99 / p50:4.2f}  [each round: {each}]")
    floor = statistics.median(_get_latencies(floor_url, 300)) * 1000
    print(f"Serve floor (HTTP proxy + router replica, no model call): p50={floor:.2f} ms")
    for name in urls.keys() - {"fastapi"}:
        overhead = (p[name][0] - p["fastapi"][0]) * 1000
        print(f"{name} p50 overhead: {overhead:.2f} ms (target <= 3 ms)")
    print(f"serve p99/p50: {p['serve'][1] / p['serve'][0]:.2f} (target <= 2.5)")


def throughput(urls: dict[str, str]) -> None:
    print("== throughput, 16 concurrent clients (3 rounds x 10 s, alternating)")
    rps = {name: [] for name in urls}
    for _ in range(3):
        for name, url in urls.items():
            rps[name].append(saturate(url, 16, 10)[0])
    for name, values in rps.items():
        print(f"{name:8s} {statistics.median(values):7.1f} req/s")
    for name in rps.keys() - {"fastapi"}:
        ratio = statistics.median(rps[name]) / statistics.median(rps["fastapi"])
        print(f"{name} / fastapi max throughput: {ratio:.2f}")


def capture(sides: dict[str, tuple[str, str]]) -> None:
    """Inference capture at 100% vs off, on two routers serving the same version (``sides``:
    name to (url, application)): p50 of one sequential client, and throughput, p50 and the
    router's CPU per request at 16 concurrent clients, rounds alternating. The CPU figure is
    the steadiest on a shared machine: on saturated cores it is what throughput follows."""
    print("== capture at 100% vs off (5 x 300 sequential, then 4 x 10 s at 16 clients)")
    routers = {name: _router_process(app) for name, (_, app) in sides.items()}
    client = psutil.Process()
    p50 = {name: [] for name in sides}
    busy = {name: _Saturated() for name in sides}
    order = list(sides)
    for _ in range(5):
        for name in order:
            p50[name].append(_percentiles(sequential(sides[name][0], 300))[0])
        order.reverse()  # neither side always goes first
    p50_busy = {name: [] for name in sides}
    for _ in range(4):
        for name in order:
            before = _cpu_clock(routers[name], client)
            rate, latencies = saturate(sides[name][0], 16, 10)
            router_s, _, elapsed = _cpu_clock(routers[name], client) - before
            busy[name].throughputs.append(rate)
            busy[name].router_busy.append(router_s / elapsed)
            p50_busy[name].append(_percentiles(latencies)[0])
        order.reverse()
    for name in sides:
        print(
            f"{name:8s} p50={statistics.median(p50[name]) * 1000:6.2f} ms  "
            f"{busy[name].rps:7.1f} req/s and"
            f" p50={statistics.median(p50_busy[name]) * 1000:6.2f} ms at 16 clients;"
            f" router CPU {busy[name].cpu_per_request * 1e6:5.0f} us a request"
        )

    def added_ms(figures: dict) -> float:
        return (statistics.median(figures["capture"]) - statistics.median(figures["off"])) * 1000

    kept = busy["capture"].rps / busy["off"].rps
    cpu = busy["capture"].cpu_per_request / busy["off"].cpu_per_request
    print(f"capture p50 added, one client: {added_ms(p50):.3f} ms (target <= 0.2 ms)")
    print(f"capture p50 added, 16 clients: {added_ms(p50_busy):.3f} ms (target <= 0.2 ms)")
    print(f"capture / off throughput at 16 clients: {kept:.3f} (target >= 0.95)")
    print(f"  router CPU a request, capture / off: {cpu:.3f}")


def _router_process(app: str) -> psutil.Process:
    """The router replica of application ``app`` (the bench runs one)."""
    from conveyor.processes import replica_processes

    found = replica_processes(app, "Router")
    if not found:
        raise RuntimeError(f"no router replica of {app} on this node: is it running?")
    return found[0]


def _cpu_clock(router: psutil.Process, client: psutil.Process) -> np.ndarray:
    """(router CPU seconds, client CPU seconds, wall seconds), to subtract two readings."""
    cpu = [sum(proc.cpu_times()[:2]) for proc in (router, client)]
    return np.array([*cpu, time.perf_counter()])


@dataclass
class _Saturated:
    """One side's rounds at saturation: throughput, latencies, and the share of a core the
    router and the load generator used."""

    throughputs: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    router_busy: list[float] = field(default_factory=list)
    client_busy: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(self.throughputs)

    @property
    def p99(self) -> float:
        return _percentiles(self.latencies)[1]

    @property
    def busy(self) -> float:
        return statistics.median(self.router_busy)

    @property
    def cpu_per_request(self) -> float:
        return self.busy / self.rps


def batching(sides: dict[str, tuple[str, str]], model_dir: Path) -> None:
    """``sides``: name -> (endpoint, application). Besides throughput and p99, each side's
    router CPU is sampled, since at saturation the router (one Python process) is the
    bottleneck: the throughput ratio is its CPU per request unbatched over batched, times
    how busy it is on each side."""
    print("== batching at saturation, 64 concurrent clients (5 rounds x 10 s, alternating)")
    batched_vs_unbatched(sides, ONE, clients=64, rounds=5)
    batching_gain, records_gain = _scoring_gains(model_dir)
    print(f"scoring alone, 32 records in one call vs 32 calls: {batching_gain:.1f}x")
    print(f"scoring one record, from a DataFrame vs from record_columns: {records_gain:.1f}x")


def batched_vs_unbatched(
    sides: dict[str, tuple[str, str]], body: Body, clients: int, rounds: int
) -> dict[str, _Saturated]:
    """The ``batched`` and ``unbatched`` sides at saturation, alternating rounds of 10 s:
    throughput, p99 and the router's CPU, printed with their ratios."""
    routers = {name: _router_process(app) for name, (_, app) in sides.items()}
    client = psutil.Process()
    result = {name: _Saturated() for name in sides}
    for _ in range(rounds):
        for name, (endpoint, _) in sides.items():
            before = _cpu_clock(routers[name], client)
            rps, latencies = saturate(f"{endpoint}/predict", clients, 10, body)
            router_s, client_s, elapsed = _cpu_clock(routers[name], client) - before
            side = result[name]
            side.throughputs.append(rps)
            side.latencies.extend(latencies)
            side.router_busy.append(router_s / elapsed)
            side.client_busy.append(client_s / elapsed)
    for name, side in result.items():
        print(
            f"{name:9s} {side.rps:7.1f} req/s  p99={side.p99 * 1000:7.1f} ms  "
            f"router: {side.busy:.2f} of a core, {side.cpu_per_request * 1000:.2f} ms CPU a "
            f"request  (client: {statistics.median(side.client_busy):.2f} of a core)"
        )
    batched, unbatched = result["batched"], result["unbatched"]
    paired = zip(batched.throughputs, unbatched.throughputs, strict=True)
    each = " ".join(f"{b / u:.2f}" for b, u in paired)
    print(f"batched / unbatched throughput: {batched.rps / unbatched.rps:.2f} (target >= 3)  "
          f"[each round: {each}]")  # fmt: skip
    print(f"  = router CPU a request, unbatched / batched: "
          f"{unbatched.cpu_per_request / batched.cpu_per_request:.2f}"
          f"  x router busy, batched / unbatched: {batched.busy / unbatched.busy:.2f}")  # fmt: skip
    print(f"batched / unbatched p99: {batched.p99 / unbatched.p99:.2f} (target <= 1.5)")
    return result


def rollouts(targets: dict, cycle: list[str]) -> None:
    from pipelines.serving.rollout import deploy

    print("== rollouts under 20 requests/s (4 rounds, alternating)")
    for target in targets.values():
        deploy(target, cycle[0])
    found = {name: [] for name in targets}
    for _ in range(4):
        for name, target in targets.items():
            found[name].append(_rollout_ratio(target, cycle))
    for name, runs in found.items():
        ratios = [run[0] for run in runs]
        listed = " ".join(f"{r:.2f}" for r in ratios)
        steady, during = (statistics.median(r[i] for r in runs) * 1000 for i in (2, 3))
        print(f"{name:8s} p99 during / steady: median {statistics.median(ratios):.2f} "
              f"[{listed}]  failed requests: {sum(run[1] for run in runs)}  "
              f"(median p99 steady {steady:.1f} ms, during {during:.1f} ms)")  # fmt: skip
    print("target: p99 during a rollout <= 2x steady, 0 failed")


SECTIONS = ("latency", "throughput", "batching", "rollouts", "capture")


SERVE_PORTS = (
    "RAY_GCS",
    "RAY_DASHBOARD",
    "RAY_CLIENT",
    "RAY_DASHBOARD_AGENT",
    "SERVE_HTTP",
    "SERVE_HAPROXY_STATS",
    "SERVE_HAPROXY_METRICS",
    "SERVE_FALLBACK_PROXY_HTTP",
    "SERVE_FALLBACK_PROXY_GRPC",
    "MLFLOW",
)


@contextlib.contextmanager
def serving_stack(prefix: str):
    """A Ray head (4 logical CPUs) and MLflow of our own on free ports, under a fresh
    ``CONVEYOR_HOME``: yields (settings, work directory); stops both by PID afterwards."""
    from conveyor.processes import stop
    from conveyor.stack import start_mlflow, start_ray
    from pipelines.settings import ConveyorSettings

    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update({f"CONVEYOR_{p}_PORT": str(free_port()) for p in SERVE_PORTS})
    os.environ.update(CONVEYOR_HOME=str(work), CONVEYOR_RAY_NUM_CPUS="4")
    settings = ConveyorSettings()
    services = [start_ray(settings)]
    try:
        services.append(start_mlflow(settings))
        yield settings, work
    finally:
        for record in reversed(services):
            stop(record)


@contextlib.contextmanager
def baseline_server(model_dir: Path, use_case: str = "predictive_maintenance"):
    """The FastAPI baseline on a free port, yielding the port; stopped afterwards."""
    port = free_port()
    proc = _baseline(model_dir, port, use_case)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from pipelines.serving.rollout import deploy, wait_for_copy
    from pipelines.serving.target import target_from_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS)
    only = parser.parse_args(argv).only

    with serving_stack("bench-serve-") as (settings, work), contextlib.ExitStack() as running:
        version, model_dir = _model(work, settings.tracking_uri)

        def target(app: str, **overrides):
            named = {
                "use_case": "predictive_maintenance",
                "app_name": app,
                "route_prefix": f"/{app}",
                "model_name": "bench_serving",
            }
            return target_from_settings(settings, **named, **overrides)

        batched = target("batched", predictor={"max_batch_size": 32, "batch_wait_timeout_s": 0.002})
        hop = target("hop", router={"mirror_stable": False})
        unbatched = target("unbatched", predictor={"max_batch_size": 1, "batch_wait_timeout_s": 0})
        deploy(batched, version)
        if {"latency", "throughput"} & set(only):
            port = running.enter_context(baseline_server(model_dir))
            deploy(hop, version)
            urls = {
                "fastapi": f"http://127.0.0.1:{port}/predict",
                "serve": f"{batched.endpoint}/predict",
                "hop": f"{hop.endpoint}/predict",
            }
            if not wait_for_copy(batched, version, timeout=60, scoring=True):
                raise RuntimeError(f"the router never scored version {version} itself")
            for url in urls.values():
                sequential(url, 50)  # warm-up
            if "latency" in only:
                latency(urls, f"{batched.endpoint}/healthz")
            if "throughput" in only:
                throughput(urls)
        if "batching" in only:
            deploy(unbatched, version)
            sides = {"batched": batched, "unbatched": unbatched}
            batching({name: (t.endpoint, t.app_name) for name, t in sides.items()}, model_dir)
        if "capture" in only:
            sides = {
                "capture": target("capture"),  # the default: every request captured
                "off": target("nocapture", router={}),  # the capture arguments left out
            }
            for side in sides.values():
                deploy(side, version)
                if not wait_for_copy(side, version, timeout=60, scoring=True):
                    raise RuntimeError(f"the router never scored version {version} itself")
            urls = {name: (f"{t.endpoint}/predict", t.app_name) for name, t in sides.items()}
            for url, _ in urls.values():
                sequential(url, 50)  # warm-up
            capture(urls)
        if "rollouts" in only:
            cycle = [version, *_more_versions(settings.tracking_uri, model_dir, 2)]
            targets = {"2 slots": target("slots"), "1 slot": target("one-slot", slots=1)}
            rollouts(targets, cycle)


if __name__ == "__main__":
    main()
