"""The promotion gate on real MLflow (SQLite store), real lake partitions and trained models."""

import datetime as dt
import multiprocessing
import os

import numpy as np
import pandas as pd
import pytest

from pipelines.data import lake
from pipelines.ml.evaluation import TimeSplit
from pipelines.ml.features import Scaler
from pipelines.ml.model import LoadedModel, save_model_dir
from pipelines.ml.promotion import champion_version, promote
from pipelines.ml.registry import register_training
from pipelines.usecases.predictive_maintenance import USE_CASE
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_days
from pipelines.usecases.predictive_maintenance.learner import LEARNER
from ray_jobs.train import run_local

DAYS = [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]
NAME = "pm"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A lake, an MLflow store, a trained model directory and an untrained one."""
    root = tmp_path_factory.mktemp("promotion")
    old_cwd = os.getcwd()
    os.chdir(root)  # the SQLite store keeps artifacts under ./mlruns
    lake_root = str(root / "lake")
    ingest_days(DAYS, lake_root, generator=GeneratorConfig(machines=10, minutes=1440))
    frame = pd.concat(
        [lake.read_partition(lake_root, d, table="telemetry") for d in DAYS], ignore_index=True
    )
    split = TimeSplit.of(frame, "timestamp")
    train = split.train(frame)
    scaler = Scaler.fit(LEARNER.features(train), LEARNER.feature_names)
    config = {
        "use_case": USE_CASE.name,
        "files": lake.partition_files(lake_root, DAYS, table="telemetry"),
        "train_until": split.train_until.isoformat(),
        "scaler": scaler.as_dict(),
        "epochs": 8,
        "batch_size": 256,
        "lr": 3e-3,
        "hidden": 32,
        "seed": 0,
        "pos_weight": 10.0,
    }
    trained = run_local(config)["state_dict"]
    untrained = LEARNER.build_model(len(LEARNER.feature_names), hidden=32).state_dict()
    dirs = {}
    for label, state in (("good", trained), ("bad", untrained)):
        meta = {"hidden": 32, "threshold": 0.5}
        directory = save_model_dir(root / label, state, scaler, meta, LEARNER)
        model = LoadedModel(directory, LEARNER)
        validation = split.validation(frame)
        scores = model.score(validation)
        threshold = LEARNER.choose_threshold(scores, LEARNER.targets(validation))
        dirs[label] = save_model_dir(
            root / label, state, scaler, {"hidden": 32, "threshold": threshold}, LEARNER
        )
    yield {"root": root, "lake": lake_root, "split": split, "dirs": dirs}
    os.chdir(old_cwd)


def _register(world, uri, label, key):
    result = {
        "model_dir": str(world["dirs"][label]),
        "train_dates": [d.isoformat() for d in DAYS],
        "split": world["split"].as_dict(),
        "metrics": {},
    }
    return register_training(uri, NAME, result, key, dag_run_id=key).version


def _promote(uri, world, version, margin=0.01, min_f1=0.3):
    return promote(
        uri,
        NAME,
        version,
        world["lake"],
        use_case=USE_CASE,
        gate=USE_CASE.gate.with_bar(min_f1, margin),
        lock_path=world["root"] / "locks" / "promote.lock",
    )


def test_gate_both_ways(world, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bad = _register(world, uri, "bad", "run-bad")
    rejected = _promote(uri, world, bad)
    assert not rejected.promoted and "below the quality bar" in rejected.reason
    assert champion_version(uri, NAME) is None

    good = _register(world, uri, "good", "run-good")
    accepted = _promote(uri, world, good)
    assert accepted.promoted and accepted.champion_after == good, accepted.reason
    assert accepted.challenger_metrics["f1"] >= 0.3
    assert champion_version(uri, NAME) == good

    # The same model again: it does not beat the champion by the margin on the same holdout.
    again = _register(world, uri, "good", "run-good-again")
    decision = _promote(uri, world, again)
    assert not decision.promoted
    assert decision.champion_metrics["f1"] == pytest.approx(decision.challenger_metrics["f1"])
    assert "does not beat champion" in decision.reason and "\n" not in decision.reason
    assert champion_version(uri, NAME) == good
    # Re-running the promote step for the champion is a no-op that still says yes.
    assert _promote(uri, world, good).promoted


def test_a_model_above_the_bar_but_below_a_floor_stays_challenger(world, tmp_path):
    """A use case's floors (``Gate.floors``): the deciding metric alone does not promote."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    good = _register(world, uri, "good", "run-floor")
    gate = USE_CASE.gate.with_bar(0.3, 0.01, floors={"precision": 1.01})
    decision = promote(
        uri,
        NAME,
        good,
        world["lake"],
        use_case=USE_CASE,
        gate=gate,
        lock_path=world["root"] / "locks" / "promote.lock",
    )
    assert not decision.promoted, decision.reason
    assert "precision" in decision.reason and "< floor 1.010" in decision.reason
    assert champion_version(uri, NAME) is None


def _promote_in_child(args):
    uri, world, version = args
    return _promote(uri, world, version).as_dict()


def test_two_concurrent_promotions_have_exactly_one_winner(world, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _register(world, uri, "good", "run-a")
    second = _register(world, uri, "good", "run-b")
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        decisions = pool.map(_promote_in_child, [(uri, world, first), (uri, world, second)])
    winners = [d["challenger"] for d in decisions if d["promoted"]]
    assert len(winners) == 1, decisions
    assert champion_version(uri, NAME) == winners[0]
    assert np.isclose(
        decisions[0]["challenger_metrics"]["f1"], decisions[1]["challenger_metrics"]["f1"]
    )
