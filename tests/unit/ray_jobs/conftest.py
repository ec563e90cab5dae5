"""Shared by the tests that run Serve deployment classes without Serve."""

import pytest
from ray.serve import batching

from ray_jobs.predictor import Predictor


@pytest.fixture
def outside_a_replica(monkeypatch):
    """``@serve.batch`` outside a replica.

    Its one check that needs a replica's context compares max_batch_size with the
    deployment's max_ongoing_requests, which app_builder keeps above it. And its queue is one
    per decorated method in a process, bound to the event loop that first used it (a replica
    has one loop); each test gets a fresh one, bound to the test's loop."""
    monkeypatch.setattr(
        batching._BatchQueue,
        "_warn_if_max_batch_size_exceeds_max_ongoing_requests",
        lambda self: None,
    )
    lazy_queue = Predictor.func_or_class._score.set_max_batch_size.__self__
    monkeypatch.setattr(lazy_queue, "_queue", None)
