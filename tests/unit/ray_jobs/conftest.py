"""Shared by the tests that run Serve deployment classes without Serve."""

import pytest
from ray.serve import batching


@pytest.fixture
def outside_a_replica(monkeypatch):
    """``@serve.batch`` outside a replica: its one check that needs a replica's context
    compares max_batch_size with the deployment's max_ongoing_requests, which app_builder
    keeps above it."""
    monkeypatch.setattr(
        batching._BatchQueue,
        "_warn_if_max_batch_size_exceeds_max_ongoing_requests",
        lambda self: None,
    )
