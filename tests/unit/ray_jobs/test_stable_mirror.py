"""The router's in-process copy of the stable version (``StableMirror``), without Serve: the
copy is checked before it takes a request, a bad or stale copy never replaces a good one, and
the router scores in process only the version the copy holds."""

import asyncio
import pickle
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest

from pipelines.serving import SAMPLE_RECORDS
from ray_jobs.serve_app import LoadedVersion, PredictorArgs, Router, StableMirror

pytestmark = pytest.mark.usefixtures("outside_a_replica")


class FixedModel:
    """Scores every record ``value`` (NaN stands for a broken model). Module level: pickled."""

    threshold = 0.5

    def __init__(self, value: float):
        self.value = value

    def predict_proba(self, frame):
        return np.full(len(frame), self.value)


def export(version: str, value: float = 0.25, held: str | None = None) -> bytes:
    """What a slot's ``export()`` returns: its loaded version (``held``) and its settings."""
    held = held or version
    loaded = LoadedVersion(requested=held, version=held, model=FixedModel(value), info={})
    return pickle.dumps((loaded, PredictorArgs(model_name="m", tracking_uri="http://x")))


def slot(*blobs: bytes):
    """A stand-in for the handle call: each call answers the next blob, and is counted."""
    calls = []

    async def fetch():
        calls.append(1)
        return blobs[min(len(calls), len(blobs)) - 1]

    return fetch, calls


async def settle(mirror: StableMirror) -> None:
    if mirror._task is not None:
        await mirror._task


def test_the_copy_is_scored_in_process_once_it_arrives():
    async def scenario():
        mirror = StableMirror(retry_delays=())
        fetch, _ = slot(export("3"))
        mirror.follow("3", fetch)
        assert mirror.version is None  # on its way: the slot serves meanwhile
        await settle(mirror)
        return mirror, await mirror.predict(SAMPLE_RECORDS[:1])

    mirror, answer = asyncio.run(scenario())
    assert mirror.version == "3" and answer["model_version"] == "3"
    assert answer["predictions"] == [{"failure_probability": 0.25, "failure": False}]


def test_a_copy_that_cannot_score_never_replaces_the_one_held():
    async def scenario():
        mirror = StableMirror(retry_delays=(0.0,))
        mirror.follow("3", slot(export("3"))[0])
        await settle(mirror)
        broken, calls = slot(export("4", value=float("nan")))
        mirror.follow("4", broken)
        await settle(mirror)
        return mirror, calls

    mirror, calls = asyncio.run(scenario())
    assert len(calls) == 2  # tried again once, then gave up
    assert mirror.version == "3" and mirror.copying is None


def test_a_slot_reloaded_with_another_version_is_not_copied_as_the_wanted_one():
    async def scenario():
        mirror = StableMirror(retry_delays=(0.0,))
        fetch, calls = slot(export("4", held="5"), export("4"))
        mirror.follow("4", fetch)
        await settle(mirror)
        return mirror, calls

    mirror, calls = asyncio.run(scenario())
    assert mirror.version == "4" and len(calls) == 2  # the stale answer refused, then retried


def test_following_the_version_held_or_on_its_way_copies_nothing_again():
    async def scenario():
        mirror = StableMirror(retry_delays=())
        fetch, calls = slot(export("3"))
        mirror.follow("3", fetch)
        mirror.follow("3", fetch)
        await settle(mirror)
        mirror.follow("3", fetch)
        await settle(mirror)
        return calls

    assert len(asyncio.run(scenario())) == 1


def test_the_router_scores_in_process_only_the_version_the_copy_holds():
    async def scenario():
        mirror = StableMirror(retry_delays=())
        mirror.follow("3", slot(export("3", value=0.75))[0])
        await settle(mirror)
        sent = []

        async def call(app, version, method, records):
            sent.append((app, version))
            return {"model_name": "m", "model_version": version, "predictions": []}

        router = SimpleNamespace(mirror=mirror, _call=call)
        predict = partial(Router.func_or_class._predict, router)
        here = await predict("pm--slot0", "3", SAMPLE_RECORDS[:1])
        there = await predict("pm--slot1", "4", SAMPLE_RECORDS[:1])
        return here, there, sent

    here, there, sent = asyncio.run(scenario())
    assert here["predictions"][0]["failure_probability"] == 0.75
    assert there["model_version"] == "4" and sent == [("pm--slot1", "4")]
