"""The router's in-process copy of the stable version (``StableMirror``), without Serve: the
copy is checked before it takes a request, a bad or stale copy never replaces a good one, and
the router scores in process only the version the copy holds."""

import asyncio
import pickle
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest

from pipelines.usecases.predictive_maintenance.learner import LEARNER, SAMPLE_RECORDS
from ray_jobs.predictor import LoadedVersion, StableMirror
from ray_jobs.serve_app import Router
from ray_jobs.serve_schemas import PredictorArgs

pytestmark = pytest.mark.usefixtures("outside_a_replica")


class FixedModel:
    """Scores every record ``value`` (NaN stands for a broken model). Module level: pickled."""

    threshold = 0.5
    learner = LEARNER

    def __init__(self, value: float):
        self.value = value

    def score(self, columns):
        rows = len(columns["product_type"])
        return np.full(rows, self.value)


def export(version: str, value: float = 0.25, held: str | None = None) -> bytes:
    """What a slot's ``export()`` returns: its loaded version (``held``) and its settings."""
    held = held or version
    loaded = LoadedVersion(requested=held, version=held, model=FixedModel(value), info={})
    return pickle.dumps(
        (
            loaded,
            PredictorArgs(
                use_case="predictive_maintenance", model_name="m", tracking_uri="http://x"
            ),
        )
    )


def slots(**answers):
    """A stand-in for the handle calls: ``fetch(version)`` answers the next of that version's
    blobs (the last one again when they run out); every call is recorded."""
    calls = []

    async def fetch(version):
        calls.append(version)
        blobs = answers[f"v{version}"]
        return blobs[min(calls.count(version), len(blobs)) - 1]

    return fetch, calls


async def settle(mirror: StableMirror) -> None:
    while mirror._tasks:
        await asyncio.gather(*mirror._tasks.values())


def test_the_copy_is_scored_in_process_once_it_arrives():
    async def scenario():
        mirror = StableMirror(retry_delays=())
        fetch, _ = slots(v3=[export("3")])
        mirror.follow("3", None, fetch)
        assert mirror.version is None  # on its way: the slot serves meanwhile
        await settle(mirror)
        return mirror, await mirror.predict(SAMPLE_RECORDS[:1])

    mirror, answer = asyncio.run(scenario())
    assert mirror.version == "3" and answer["model_version"] == "3"
    assert answer["predictions"] == [{"failure_probability": 0.25, "failure": False}]


def test_the_incoming_version_is_copied_ahead_and_only_swapped_in_at_the_switch():
    async def scenario():
        mirror = StableMirror(retry_delays=())
        fetch, calls = slots(v3=[export("3")], v4=[export("4", value=0.75)])
        mirror.follow("3", "4", fetch)
        await settle(mirror)
        before = (mirror.version, sorted(mirror.staged))
        mirror.follow("4", None, fetch)  # the switch: nothing left to fetch
        answer = await mirror.predict(SAMPLE_RECORDS[:1])
        return before, mirror, answer, calls

    before, mirror, answer, calls = asyncio.run(scenario())
    assert before == ("3", ["4"])  # held, but 3 is still the one scored
    assert mirror.version == "4" and mirror.staged == {} and sorted(calls) == ["3", "4"]
    assert answer["predictions"][0]["failure_probability"] == 0.75


def test_a_copy_of_a_version_no_longer_wanted_is_dropped():
    async def scenario():
        mirror = StableMirror(retry_delays=())
        fetch, _ = slots(v3=[export("3")], v4=[export("4")])
        mirror.follow("3", "4", fetch)
        await settle(mirror)
        mirror.follow("3", None, fetch)  # the rollout to 4 was rolled back
        return mirror

    mirror = asyncio.run(scenario())
    assert mirror.version == "3" and mirror.staged == {}


def test_a_copy_that_cannot_score_never_replaces_the_one_held():
    async def scenario():
        mirror = StableMirror(retry_delays=(0.0,))
        fetch, calls = slots(v3=[export("3")], v4=[export("4", value=float("nan"))])
        mirror.follow("3", None, fetch)
        await settle(mirror)
        mirror.follow("4", None, fetch)
        await settle(mirror)
        return mirror, calls

    mirror, calls = asyncio.run(scenario())
    assert calls.count("4") == 2  # tried again once, then gave up
    assert mirror.version == "3" and mirror.staged == {} and mirror._tasks == {}


def test_a_slot_reloaded_with_another_version_is_not_copied_as_the_wanted_one():
    async def scenario():
        mirror = StableMirror(retry_delays=(0.0,))
        fetch, calls = slots(v4=[export("4", held="5"), export("4")])
        mirror.follow("4", None, fetch)
        await settle(mirror)
        return mirror, calls

    mirror, calls = asyncio.run(scenario())
    assert mirror.version == "4" and len(calls) == 2  # the stale answer refused, then retried


def test_following_the_version_held_or_on_its_way_copies_nothing_again():
    async def scenario():
        mirror = StableMirror(retry_delays=())
        fetch, calls = slots(v3=[export("3")])
        mirror.follow("3", None, fetch)
        mirror.follow("3", None, fetch)
        await settle(mirror)
        mirror.follow("3", None, fetch)
        await settle(mirror)
        return calls

    assert asyncio.run(scenario()) == ["3"]


def test_the_router_scores_in_process_only_the_version_the_copy_holds():
    async def scenario():
        mirror = StableMirror(retry_delays=())
        mirror.follow("3", None, slots(v3=[export("3", value=0.75)])[0])
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
