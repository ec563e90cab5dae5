"""Real MLflow with a SQLite backend (no server needed for the registry logic)."""

import json

from pipelines.ml.registry import download_version, register_training, version_tags


def test_registering_the_same_run_twice_gives_one_version(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a SQLite store keeps artifacts under ./mlruns
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text(json.dumps({"hidden": 8}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = {
        "model_dir": str(model_dir),
        "params": {"epochs": 2},
        "metrics": {"f1": 0.9},
        "train_dates": ["2026-11-01"],
        "manifests": {"2026-11-01": "abc"},
    }
    first = register_training(uri, "pm", result, "dag-run-1")
    second = register_training(uri, "pm", result, "dag-run-1")
    third = register_training(uri, "pm", result, "dag-run-2")
    assert (first.version, first.created) == ("1", True)
    assert (second.version, second.created) == ("1", False)
    assert third.version == "2"
    tags = version_tags(uri, "pm", "1")
    assert tags["manifest.2026-11-01"] == "abc"
    assert tags["train_dates"] == "2026-11-01"
    downloaded = download_version(uri, "pm", "1", str(tmp_path / "dl"))
    assert json.loads((tmp_path / "dl" / "model" / "model.json").read_text()) == {"hidden": 8}
    assert downloaded.endswith("model")


def test_a_version_is_found_again_by_what_it_was_trained_on(tmp_path, monkeypatch):
    """The fingerprint covers each partition's content and the hyperparameters: the same
    inputs find the version (a rerun reuses it); new rows or other hyperparameters do not."""
    import datetime as dt

    from pipelines.ml.registry import find_trained_version, training_fingerprint
    from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
    from pipelines.usecases.predictive_maintenance.ingest import ingest_day

    monkeypatch.chdir(tmp_path)
    lake_root = str(tmp_path / "lake")
    days = ["2026-11-02", "2026-11-03"]
    for day in days:
        ingest_day(dt.date.fromisoformat(day), lake_root, generator=GeneratorConfig(machines=2))
    hyper = {"epochs": 2, "batch_size": 64, "lr": 0.01}
    fingerprint = training_fingerprint(lake_root, "telemetry", days, hyper)
    assert training_fingerprint(lake_root, "telemetry", list(reversed(days)), hyper) == fingerprint
    assert training_fingerprint(lake_root, "telemetry", days, {**hyper, "epochs": 3}) != fingerprint

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text("{}")
    result = {"model_dir": str(model_dir), "train_dates": days, "metrics": {}}
    assert find_trained_version(uri, "pm", fingerprint) is None
    register_training(uri, "pm", result, "run-1", fingerprint="other")
    registered = register_training(uri, "pm", result, "run-2", fingerprint=fingerprint)
    found = find_trained_version(uri, "pm", fingerprint)
    assert found.version == registered.version == "2"
    assert found.run_id == registered.run_id

    ingest_day(dt.date(2026, 11, 3), lake_root, generator=GeneratorConfig(machines=3))
    assert (
        training_fingerprint(lake_root, "telemetry", days, hyper) != fingerprint
    )  # new rows: retrain


def test_a_version_s_reference_scores_are_what_training_kept_or_none(tmp_path, monkeypatch):
    """Training keeps a seeded sample of holdout scores as the endpoint answers them (an alarm
    probability for the image learner's class scores); the monitor reads them back from the
    registry. A version trained before they were kept has none, and that is not an error."""
    import numpy as np

    from pipelines.catalog import learner_of
    from pipelines.ml.evaluation import reference_scores
    from pipelines.ml.registry import REFERENCE_SCORES, version_reference_scores

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    images = learner_of("visual_quality_control")
    classes = np.random.default_rng(0).dirichlet(np.ones(len(images.classes)), 7000)
    kept = reference_scores(images, classes, threshold=0.5, limit=5000)
    alarm = images.alarm_scores(classes)
    assert len(kept) == 5000 and set(kept) <= set(alarm.tolist())
    assert kept == reference_scores(images, classes, threshold=0.5, limit=5000)  # seeded

    for name, scores in (("with", kept), ("without", None)):
        model_dir = tmp_path / name / "model"
        (model_dir / "evaluation").mkdir(parents=True)
        if scores is not None:
            (model_dir / REFERENCE_SCORES).write_text(json.dumps({"scores": scores}))
        result = {"model_dir": str(model_dir), "params": {}, "metrics": {}, "train_dates": []}
        register_training(uri, name, result, f"run-{name}")
    assert version_reference_scores(uri, "with", "1") == kept
    assert version_reference_scores(uri, "without", "1") == []
