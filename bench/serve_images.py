"""The visual quality control endpoint (one PNG sent raw), side by side in one run:

1. latency (p50, p99; one client, sequential) of the Ray Serve endpoint (router + predictor,
   as deployed by ``pipelines.serving.rollout``) vs a plain FastAPI app under uvicorn serving
   the same model directory with the same request parsing (``bench.fastapi_baseline``);
2. batched (``max_batch_size=32``, adaptive 2 ms wait) vs unbatched (``max_batch_size=1``)
   throughput and p99 at saturation (32 concurrent clients, one image each), with each
   side's router CPU; and what batching can give at most: the CNN scoring 32 images in one
   call vs 32 calls of one, in this process.

The model is the use case's CNN trained here for one epoch on generated images (its accuracy
does not matter to the timings). Rounds alternate between the sides, so drift hits both.
Prints ratios; not a test.

    python -m bench.serve_images [--only latency batching]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
import time
from pathlib import Path

from bench._common import ingest, training_config
from bench.serve_latency import (
    Body,
    _percentiles,
    baseline_server,
    batched_vs_unbatched,
    sequential,
    serving_stack,
)

USE_CASE = "visual_quality_control"
MODEL_NAME = "bench_images"
SECTIONS = ("latency", "batching")


def _png() -> bytes:
    from pipelines.usecases.visual_quality_control.generator import sample_image
    from pipelines.usecases.visual_quality_control.images import encode_png

    return encode_png(sample_image("scratch"))


def _model(work: Path, tracking_uri: str) -> tuple[str, Path]:
    """The use case's CNN, one epoch on a day of generated images, saved and registered."""
    from pipelines.catalog import learner_of
    from pipelines.ml.features import Scaler
    from pipelines.ml.model import save_model_dir
    from pipelines.ml.registry import register_training
    from ray_jobs.train import run_local

    learner = learner_of(USE_CASE)
    day, root = dt.date(2026, 11, 1), str(work / "lake")
    ingest(USE_CASE, [day], root, images=300)
    config = training_config(root, [day], epochs=1, use_case=USE_CASE)
    state = run_local(config)["state_dict"]
    scaler = Scaler.from_dict(config["scaler"], learner.feature_names)
    meta = {"use_case": USE_CASE, "hidden": config["hidden"], "threshold": 0.5}
    directory = save_model_dir(work / "model", state, scaler, meta, learner)
    result = {"model_dir": str(directory), "train_dates": [day.isoformat()], "metrics": {}}
    version = register_training(tracking_uri, MODEL_NAME, result, "bench").version
    return version, directory


def latency(urls: dict[str, str], body: Body) -> None:
    print("== latency, one client, sequential (5 rounds x 200 requests, alternating)")
    rounds = {name: [] for name in urls}
    for _ in range(5):
        for name, url in urls.items():
            rounds[name].append(sequential(url, 200, body))
    p = {name: _percentiles([x for r in runs for x in r]) for name, runs in rounds.items()}
    for name, (p50, p99) in p.items():
        print(f"{name:8s} p50={p50 * 1000:6.2f} ms  p99={p99 * 1000:6.2f} ms")
    print(f"serve / fastapi p50: {p['serve'][0] / p['fastapi'][0]:.2f}"
          f"  p99: {p['serve'][1] / p['fastapi'][1]:.2f}"
          f"  (p50 overhead {(p['serve'][0] - p['fastapi'][0]) * 1000:.2f} ms)")  # fmt: skip


def scoring_gain(model_dir: Path, rounds: int = 30) -> float:
    """32 images scored in one call over 32 calls of one: the most batching can give."""
    from pipelines.catalog import learner_of
    from pipelines.ml.model import LoadedModel
    from pipelines.usecases.visual_quality_control.generator import sample_image

    learner = learner_of(USE_CASE)
    model = LoadedModel(model_dir, learner)
    records = [{"pixels": sample_image("scratch", seed=i)} for i in range(32)]
    one, batch = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for record in records:
            model.score(learner.record_columns([record]))
        one.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.score(learner.record_columns(records))
        batch.append(time.perf_counter() - started)
    return statistics.median(one) / statistics.median(batch)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from pipelines.serving.rollout import deploy, wait_for_copy
    from pipelines.serving.target import target_from_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS)
    only = parser.parse_args(argv).only
    body = Body(data=_png(), content_type="image/png")

    stack = serving_stack("bench-serve-images-")
    with stack as (settings, work), contextlib.ExitStack() as running:
        version, model_dir = _model(work, settings.tracking_uri)

        def target(app: str, **predictor):
            return target_from_settings(
                settings,
                use_case=USE_CASE,
                app_name=app,
                route_prefix=f"/{app}",
                model_name=MODEL_NAME,
                predictor=predictor,
            )

        batched = target("batched", max_batch_size=32, batch_wait_timeout_s=0.002)
        unbatched = target("unbatched", max_batch_size=1, batch_wait_timeout_s=0)
        deploy(batched, version)
        if not wait_for_copy(batched, version, timeout=60, scoring=True):
            raise RuntimeError(f"the router never scored version {version} itself")
        if "latency" in only:
            port = running.enter_context(baseline_server(model_dir, USE_CASE))
            urls = {
                "fastapi": f"http://127.0.0.1:{port}/predict",
                "serve": f"{batched.endpoint}/predict",
            }
            for url in urls.values():
                sequential(url, 30, body)  # warm-up
            latency(urls, body)
        if "batching" in only:
            deploy(unbatched, version)
            wait_for_copy(unbatched, version, timeout=60, scoring=True)
            print("== batching at saturation, 32 concurrent clients (4 rounds x 10 s)")
            sides = {"batched": batched, "unbatched": unbatched}
            batched_vs_unbatched(
                {name: (t.endpoint, t.app_name) for name, t in sides.items()},
                body,
                clients=32,
                rounds=4,
            )
            gain = scoring_gain(model_dir)
            print(f"scoring alone, 32 images in one call vs 32 calls: {gain:.1f}x")


if __name__ == "__main__":
    main()
