"""The predictor's adaptive batching, on its class without Serve (``@serve.batch`` runs on a
plain asyncio loop). The model is a stand-in that records the size of each call: what is
tested is how requests are grouped, not the scores."""

import asyncio

import numpy as np
import pytest

from pipelines.usecases.predictive_maintenance.learner import LEARNER, SAMPLE_RECORDS
from ray_jobs.predictor import LoadedVersion, Predictor
from ray_jobs.serve_schemas import PredictorArgs

LONG_WAIT = 60.0
pytestmark = pytest.mark.usefixtures("outside_a_replica")


@pytest.fixture(scope="module")
def run():
    """One event loop for the module: ``@serve.batch`` keeps one queue per decorated method,
    bound to the loop that first used it (in a replica there is only one)."""
    with asyncio.Runner() as runner:
        yield runner.run


class RecordingModel:
    threshold = 0.5
    learner = LEARNER

    def __init__(self):
        self.calls: list[int] = []

    def score(self, columns):
        rows = len(columns["product_type"])
        self.calls.append(rows)
        return np.full(rows, 0.25)


def _predictor(max_batch_size: int, wait: float = LONG_WAIT):
    # model_construct: a wait far over the field's 1 s bound, so waiting could not go unseen.
    args = PredictorArgs.model_construct(
        use_case="predictive_maintenance",
        model_name="m",
        tracking_uri="http://unused",
        max_batch_size=max_batch_size,
        batch_wait_timeout_s=wait,
    )
    predictor = Predictor.func_or_class(args)
    predictor.loaded = LoadedVersion(requested="1", version="1", model=RecordingModel(), info={})
    return predictor


def test_a_lone_request_is_scored_at_once_not_after_the_batch_wait(run):
    async def one():
        predictor = _predictor(max_batch_size=8)
        # With the 60 s wait applied, this would time out.
        answer = await asyncio.wait_for(predictor.predict(SAMPLE_RECORDS[:1]), LONG_WAIT / 4)
        return predictor, answer

    predictor, answer = run(one())
    assert predictor.loaded.model.calls == [1]
    assert answer["predictions"] == [{"failure_probability": 0.25, "failure": False}]


def test_concurrent_requests_share_model_calls(run):
    async def many():
        predictor = _predictor(max_batch_size=8, wait=0.05)
        calls = [predictor.predict(SAMPLE_RECORDS[:1]) for _ in range(8)]
        answers = await asyncio.wait_for(asyncio.gather(*calls), LONG_WAIT / 4)
        return predictor, answers

    predictor, answers = run(many())
    assert len(answers) == 8 and all(len(a["predictions"]) == 1 for a in answers)
    # Whoever finds nobody else in flight goes alone; the others wait for company.
    assert sum(predictor.loaded.model.calls) == 8
    assert len(predictor.loaded.model.calls) <= 2
    assert predictor.in_flight == 0
