"""Scoring: a predictor slot (``Predictor``) that holds one registered model version and
scores it in dynamic batches, and the router's in-process copy of the stable version
(``StableMirror``).

A version is loaded from the MLflow registry with its feature scaler, in a thread of its own
at lower CPU priority, and must score its use case's sample records
(``Learner.sample_records``) before it replaces anything. The features, the record's columns
and the prediction's fields are the use case's learner's: this module knows no use case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ray import serve

from ray_jobs.serve_schemas import ModelChoice, PredictorArgs

log = logging.getLogger("ray.serve")


async def at_background_priority(fn, *args, niceness: int = 10):
    """``fn(*args)`` in a thread of its own at lower CPU priority (on Linux, priority is per
    thread), so a version loading next to the versions serving traffic does not take their
    CPU. The thread ends with the call: nothing to restore, which would need privileges."""

    def lower() -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
            thread = threading.get_native_id()
            niceness_now = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, niceness_now + niceness)

    pool = ThreadPoolExecutor(1, thread_name_prefix="load", initializer=lower)
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    finally:
        pool.shutdown(wait=False)


@dataclass(frozen=True)
class LoadedVersion:
    """One model version in memory; swapped as a whole, so a request never mixes two."""

    requested: str
    version: str
    model: object
    info: dict


def load_version(args: PredictorArgs, requested: str) -> LoadedVersion:
    """Resolve, download and load ``requested`` from the registry, then score the sample
    records: a version that cannot score is refused before it replaces anything."""
    import tempfile

    from pipelines.catalog import learner_of
    from pipelines.ml.model import LoadedModel
    from pipelines.ml.registry import describe_version, download_version, resolve_version

    learner = learner_of(args.use_case)
    version = resolve_version(args.tracking_uri, args.model_name, requested)
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:  # a slot reloads many times
        directory = download_version(args.tracking_uri, args.model_name, version, scratch)
        model = LoadedModel(directory, learner)
    check_scores(model, args.model_name, version)
    info = describe_version(args.tracking_uri, args.model_name, version)
    return LoadedVersion(requested=requested, version=version, model=model, info=info)


def check_scores(model, model_name: str, version: str) -> None:
    """Score the use case's sample records; anything but sane scores (``Learner.valid_scores``:
    probabilities for a classifier, NaN never) refuses the model."""
    learner = model.learner
    scores = model.score(learner.record_columns(learner.sample_records)).tolist()
    if not learner.valid_scores(scores):
        raise RuntimeError(
            f"version {version} of {model_name} scored {scores}, not scores within"
            f" {learner.score_range}"
        )


def unpack_copy(blob: bytes, version: str) -> tuple[LoadedVersion, PredictorArgs]:
    """A slot's ``export()``, checked as a load is: it must hold ``version`` and score."""
    loaded, args = pickle.loads(blob)  # from our own slot, as every Ray result is pickled
    if loaded is None or loaded.version != version:
        held = loaded.version if loaded else "nothing"
        raise RuntimeError(f"the slot holds {held}, not version {version}")
    check_scores(loaded.model, args.model_name, loaded.version)
    return loaded, args


@serve.deployment(
    ray_actor_options={"num_cpus": 0.25},
    health_check_period_s=5,
    health_check_timeout_s=30,
    graceful_shutdown_timeout_s=20,
)
class Predictor:
    """A predictor slot: serves whichever registered version its ``user_config`` names, in
    dynamic batches. Changing the version reloads in place (``reconfigure``), in the same
    process: a rollout starts no new process and no build task, which on a small machine
    were what slowed the live version's requests during a rollout."""

    def __init__(self, args: PredictorArgs):
        self.args = args
        self.in_flight = 0
        self.loaded: LoadedVersion | None = None
        self._score.set_max_batch_size(args.max_batch_size)

    async def reconfigure(self, user_config: dict) -> None:
        """Serve calls this before the replica's first request and on every change of
        ``user_config``. The new version replaces the old one only once it has loaded and
        scored the sample records; if it cannot, this raises and Serve marks the update
        failed, which the rollout turns into a rollback."""
        choice = ModelChoice.model_validate(user_config)
        if self.loaded and self.loaded.requested == choice.model_version:
            return
        loaded = await at_background_priority(load_version, self.args, choice.model_version)
        self.loaded = loaded
        log.info("loaded model=%s version=%s", self.args.model_name, loaded.version)

    def check_health(self) -> None:
        """Serve calls this every few seconds; a slot without a version never gets traffic."""
        if self.loaded is None:
            raise RuntimeError(
                "no model loaded: the deployment's user_config must name a model_version"
            )

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _score(self, batches: list[list[dict]]) -> list[tuple[LoadedVersion, list]]:
        loaded = self.loaded
        rows = [record for batch in batches for record in batch]
        model = loaded.model
        probabilities = model.score(model.learner.record_columns(rows)).tolist()
        out, start = [], 0
        for batch in batches:
            out.append((loaded, probabilities[start : start + len(batch)]))
            start += len(batch)
        return out

    async def predict(self, records: list[dict]) -> dict:
        # Adaptive batching: a partial batch waits for company only while other requests are
        # in flight. A lone request is scored at once (the wait would add to its latency and
        # buy nothing); under load, the wait is what fills the batches.
        self.in_flight += 1
        try:
            wait = self.args.batch_wait_timeout_s if self.in_flight > 1 else 0.0
            self._score.set_batch_wait_timeout_s(wait)
            loaded, probabilities = await self._score(records)
        finally:
            self.in_flight -= 1
        model = loaded.model
        return {
            "model_name": self.args.model_name,
            "model_version": loaded.version,
            "predictions": [model.learner.prediction(p, model.threshold) for p in probabilities],
        }

    def export(self) -> bytes:
        """The loaded version and this slot's settings, pickled: a router copies them to
        score the stable version in its own process (``StableMirror``)."""
        return pickle.dumps((self.loaded, self.args))

    def metadata(self) -> dict:
        loaded = self.loaded
        learner = loaded.model.learner
        alias = None if loaded.requested.isdigit() else loaded.requested
        train_dates = loaded.info["tags"].get("train_dates", "")
        return {
            "model_name": self.args.model_name,
            "model_version": loaded.version,
            "alias": alias,
            "run_id": loaded.info["run_id"],
            "training_partitions": [d for d in train_dates.split(",") if d],
            "threshold": loaded.model.threshold,
            "metrics": loaded.model.meta.get("metrics"),
            "use_case": self.args.use_case,
            "input_schema": learner.request_model.model_json_schema(),
            "feature_names": list(learner.feature_names),
            "batching": {
                "max_batch_size": self.args.max_batch_size,
                "batch_wait_timeout_s": self.args.batch_wait_timeout_s,
            },
        }


class StableMirror:
    """The router's copy of the stable version, scored in the router's own process.

    Why: on the way through a slot, a request pays a second hop (a gRPC call to the slot's
    process, and Serve's request handling there), a large share of the Serve p50 on a small
    machine (``hop`` in bench.serve_latency). A copy comes from the slot that loaded and
    checked the version, over a handle call (``export``), and is checked again here before
    it takes any request, so the router never talks to the registry. The version a rollout
    is about to make stable (``Routing.incoming``) is copied ahead and held unused, so the
    switch only swaps it in.
    Every other version (canary, shadow, pinned), and the stable one until its copy is here,
    goes to the slots. Scoring reuses ``Predictor`` (the class, not a deployment) with
    the slot's own batching settings; it holds one version at a time, swapped whole, so a
    batch never mixes two."""

    def __init__(self, retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)):
        self.predictor: Predictor | None = None
        self.stable: str | None = None
        self.wanted: set[str] = set()
        self.staged: dict[str, tuple[LoadedVersion, PredictorArgs]] = {}
        self.retry_delays = retry_delays
        self._tasks: dict[str, asyncio.Task] = {}

    @property
    def version(self) -> str | None:
        """The version scored here, or None."""
        return self.predictor.loaded.version if self.predictor else None

    def follow(self, stable: str, incoming: str | None, fetch) -> None:
        """Score ``stable`` here once its copy is here, and copy ``incoming`` ahead; ``await
        fetch(version)`` gives that version's slot's ``export()``. Copies of other versions,
        held or on their way, are dropped."""
        self.stable, self.wanted = stable, {v for v in (stable, incoming) if v}
        for version in [v for v in self._tasks if v not in self.wanted]:
            self._tasks.pop(version).cancel()
        self.staged = {v: c for v, c in self.staged.items() if v in self.wanted}
        self._install()
        loop = asyncio.get_running_loop()
        for version in self.wanted - {self.version, *self.staged, *self._tasks}:
            self._tasks[version] = loop.create_task(self._copy(version, fetch))

    def _install(self) -> None:
        if self.stable not in self.staged:
            return
        loaded, args = self.staged.pop(self.stable)
        if self.predictor is None or self.predictor.args != args:
            self.predictor = Predictor.func_or_class(args)
        self.predictor.loaded = loaded
        log.info("router scores version %s in process", loaded.version)

    async def _copy(self, version: str, fetch) -> None:
        try:
            for delay in (*self.retry_delays, None):
                try:
                    copy = await at_background_priority(unpack_copy, await fetch(version), version)
                    break
                except Exception as exc:  # its slot still serves it: retry, then give up loudly
                    if delay is None:
                        log.error("version %s stays in its slot only: %r", version, exc)
                        return
                    log.warning(
                        "copying version %s failed, retry in %.1fs: %r", version, delay, exc
                    )
                    await asyncio.sleep(delay)
        finally:
            if self._tasks.get(version) is asyncio.current_task():
                del self._tasks[version]
        if version in self.wanted:
            self.staged[version] = copy
            self._install()

    async def predict(self, records: list[dict]) -> dict:
        return await self.predictor.predict(records)
