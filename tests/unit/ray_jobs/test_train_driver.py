"""The training driver's own work around the fit: what it does while it waits for the
workers."""


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
