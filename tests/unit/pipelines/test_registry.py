"""Real MLflow with a SQLite backend (no server needed for the registry logic)."""

import json

from pipelines.registry import download_version, register_training, version_tags


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
