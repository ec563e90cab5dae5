"""The training job around its loop: what the driver does while it waits for the workers, and
how a worker scales the unscaled rows Ray Data gives it."""


def test_evaluation_imports_are_warmed_in_the_background_and_a_failure_is_only_logged(caplog):
    """While the driver waits for the workers it imports what evaluation needs; a module that
    fails to import is logged there and raises again where it is used."""
    import sys

    from ray_jobs.train import EVALUATION_IMPORTS, warm_imports

    assert {"sklearn.metrics", "matplotlib"} <= set(EVALUATION_IMPORTS)
    sys.modules.pop("colorsys", None)
    with caplog.at_level("WARNING", logger="conveyor.train"):
        warm_imports(("no_such_module_conveyor", "colorsys")).join(timeout=60)
    assert "colorsys" in sys.modules  # the one after the failure is imported too
    assert "warm import of no_such_module_conveyor failed" in caplog.text


class _Shard:
    """What ``iterate_batches`` reads of a Ray Data shard: NumPy windows, read-only as
    Arrow's are."""

    def __init__(self, features, target):
        self.features, self.target = features, target

    def iter_batches(self, batch_size, batch_format, prefetch_batches):
        for start in range(0, len(self.target), batch_size):
            window = {
                "features": self.features[start : start + batch_size].copy(),
                "target": self.target[start : start + batch_size].copy(),
            }
            for array in window.values():
                array.setflags(write=False)
            yield window


def test_a_worker_scales_the_rows_it_iterates_as_the_scaler_does():
    """The rows are stored unscaled (so they can be read before the scaler is known); what the
    training step gets is exactly ``Scaler.transform`` of each row, whatever the shuffle."""
    import numpy as np
    import torch

    from pipelines.ml.features import Scaler
    from ray_jobs.train import iterate_batches

    rng = np.random.default_rng(0)
    features = (rng.normal(size=(5_000, 3)) * [1.0, 50.0, 0.01] + [0.0, 300.0, 7.0]).astype(
        np.float32
    )
    target = np.arange(len(features), dtype=np.float32)  # each row's id
    scaler = Scaler.fit(features, ["a", "b", "c"])
    shard = _Shard(features, target)
    seen = {}
    for x, y in iterate_batches(shard, 64, seed=1, device=torch.device("cpu"), scaler=scaler):
        for row, index in zip(x.numpy(), y.numpy().astype(int), strict=True):
            seen[index] = row
    assert sorted(seen) == list(range(len(features)))
    got = np.stack([seen[i] for i in range(len(features))])
    np.testing.assert_array_equal(got, scaler.transform(features))
    unscaled = next(iterate_batches(shard, 64, seed=1, device=torch.device("cpu")))[0]
    assert not np.allclose(unscaled.numpy().mean(axis=0), 0, atol=0.5)  # without, as stored
