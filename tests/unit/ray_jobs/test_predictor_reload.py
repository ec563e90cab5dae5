"""A predictor slot changing versions in place (``reconfigure``), on its class without Serve:
a version that cannot load or score never replaces the one in the slot."""

import asyncio

import pytest

from ray_jobs import predictor
from ray_jobs.predictor import LoadedVersion, Predictor
from ray_jobs.serve_schemas import PredictorArgs

pytestmark = pytest.mark.usefixtures("outside_a_replica")


@pytest.fixture
def loads(monkeypatch):
    """Stand-in registry: versions load instantly; "bad" fails as a NaN model would."""
    calls = []

    def load_version(args, requested):
        calls.append(requested)
        if requested == "bad":
            raise RuntimeError("version 9 of m scored [nan], not probabilities")
        return LoadedVersion(requested=requested, version=requested, model=object(), info={})

    monkeypatch.setattr(predictor, "load_version", load_version)
    return calls


def _slot():
    return Predictor.func_or_class(
        PredictorArgs(use_case="predictive_maintenance", model_name="m", tracking_uri="http://x")
    )


def test_a_slot_without_a_version_is_unhealthy():
    with pytest.raises(RuntimeError, match="no model loaded.*user_config"):
        _slot().check_health()


def test_a_new_version_replaces_the_old_only_once_loaded(loads):
    slot = _slot()
    asyncio.run(slot.reconfigure({"model_version": "1"}))
    asyncio.run(slot.reconfigure({"model_version": "2"}))
    assert slot.loaded.version == "2" and loads == ["1", "2"]

    with pytest.raises(RuntimeError, match="not probabilities"):
        asyncio.run(slot.reconfigure({"model_version": "bad"}))
    assert slot.loaded.version == "2"  # still the last good version
    slot.check_health()


def test_the_same_version_again_loads_nothing(loads):
    slot = _slot()
    asyncio.run(slot.reconfigure({"model_version": "1"}))
    asyncio.run(slot.reconfigure({"model_version": "1"}))
    assert loads == ["1"]


def test_the_load_runs_off_the_event_loop_thread(loads, monkeypatch):
    threads = []
    real = predictor.load_version

    def where(args, requested):
        import threading

        threads.append(threading.current_thread().name)
        return real(args, requested)

    monkeypatch.setattr(predictor, "load_version", where)
    asyncio.run(_slot().reconfigure({"model_version": "1"}))
    assert threads and threads[0].startswith("load")
