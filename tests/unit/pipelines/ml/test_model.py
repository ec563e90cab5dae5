import datetime as dt
import pickle

import numpy as np
import pytest
import torch

from pipelines.ml.features import Scaler
from pipelines.ml.model import WEIGHTS_FILE, LoadedModel, save_model_dir
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_day
from pipelines.usecases.predictive_maintenance.learner import (
    FEATURE_NAMES,
    LEARNER,
    SAMPLE_RECORDS,
)
from ray_jobs.train import run_local


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    day = dt.date(2026, 11, 1)
    ingest_day(day, str(root), generator=GeneratorConfig(machines=10, minutes=720))
    from pipelines.data import lake

    files = lake.partition_files(root, [day], table="telemetry")
    frame = lake.read_partition(root, day, table="telemetry")
    scaler = Scaler.fit(LEARNER.features(frame), FEATURE_NAMES)
    config = {
        "use_case": "predictive_maintenance",
        "files": files,
        "scaler": scaler.as_dict(),
        "epochs": 6,
        "batch_size": 256,
        "lr": 3e-3,
        "hidden": 32,
        "seed": 0,
        "pos_weight": 5.0,
    }
    result = run_local(config)
    directory = save_model_dir(
        tmp_path_factory.mktemp("model"),
        result["state_dict"],
        scaler,
        {"hidden": 32, "threshold": 0.5},
        LEARNER,
    )
    return result, directory


def test_scaler_round_trips_as_json():
    features = np.random.default_rng(0).normal(size=(50, len(FEATURE_NAMES))).astype(np.float32)
    scaler = Scaler.fit(features, FEATURE_NAMES)
    again = Scaler.from_dict(scaler.as_dict())
    np.testing.assert_allclose(again.transform(features), scaler.transform(features))


def test_training_loop_runs_without_ray_and_loss_goes_down(trained):
    history = trained[0]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"], history


def test_overstrained_machine_scores_higher_than_a_normal_one(trained):
    import pandas as pd

    model = LoadedModel(trained[1], LEARNER)
    normal, overstrained = model.score(pd.DataFrame(SAMPLE_RECORDS))
    assert overstrained > normal, f"overstrained {overstrained} <= normal {normal}"


def test_tampered_weights_with_a_pickle_payload_are_refused(trained, tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    directory = trained[1]
    original = (directory / WEIGHTS_FILE).read_bytes()
    try:
        with open(directory / WEIGHTS_FILE, "wb") as handle:
            pickle.dump({"weight": Exploit()}, handle)
        with pytest.raises(pickle.UnpicklingError):
            LoadedModel(directory, LEARNER)
    finally:
        (directory / WEIGHTS_FILE).write_bytes(original)
    assert isinstance(LoadedModel(directory, LEARNER).net, torch.nn.Module)


def test_the_saved_model_carries_its_signature_and_a_mismatch_is_refused_on_load(trained, tmp_path):
    import json
    import shutil

    from pipelines.ml.model import META_FILE, ModelSignatureError

    meta = json.loads((trained[1] / META_FILE).read_text())
    assert meta["inputs"] == list(FEATURE_NAMES)
    assert meta["outputs"] == ["failure_probability"]
    assert LoadedModel(trained[1], LEARNER).inputs == list(FEATURE_NAMES)

    shifted = tmp_path / "shifted"
    shutil.copytree(trained[1], shifted)
    (shifted / META_FILE).write_text(json.dumps({**meta, "inputs": list(FEATURE_NAMES)[1:]}))
    with pytest.raises(ModelSignatureError, match="signature's inputs .* differ from its scaler"):
        LoadedModel(shifted, LEARNER)

    narrow = tmp_path / "narrow"
    shutil.copytree(trained[1], narrow)
    state = torch.load(narrow / WEIGHTS_FILE, weights_only=True)
    first = next(k for k in state if k.endswith("weight"))
    state[first] = state[first][:, :-1]
    torch.save(state, narrow / WEIGHTS_FILE)
    with pytest.raises(ModelSignatureError, match=f"weights take {len(FEATURE_NAMES) - 1} inputs"):
        LoadedModel(narrow, LEARNER)


def test_a_model_is_refused_by_a_learner_that_makes_other_features(trained):
    from pipelines.ml.learner import Learner
    from pipelines.ml.model import ModelSignatureError

    class Other(Learner):
        feature_names = ("a", "b")

    with pytest.raises(ModelSignatureError, match="trained on features .* but Other makes"):
        LoadedModel(trained[1], Other())
