"""The promotion gate on real MLflow (SQLite store), real lake partitions and trained models."""

import datetime as dt
import multiprocessing
import os

import pandas as pd
import pytest

from pipelines.data import lake
from pipelines.locks import Lock
from pipelines.ml.evaluation import TimeSplit
from pipelines.ml.features import Scaler
from pipelines.ml.model import LoadedModel, save_model_dir
from pipelines.ml.promotion import PROMOTED_OVER_TAG, champion_version, promote
from pipelines.ml.registry import register_training, version_tags
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
    dirs, thresholds = {}, {}
    for label, state in (("good", trained), ("bad", untrained)):
        meta = {"hidden": 32, "threshold": 0.5}
        directory = save_model_dir(root / label, state, scaler, meta, LEARNER)
        model = LoadedModel(directory, LEARNER)
        validation = split.validation(frame)
        scores = model.score(validation)
        threshold = thresholds[label] = LEARNER.choose_threshold(
            scores, LEARNER.targets(validation)
        )
        dirs[label] = save_model_dir(
            root / label, state, scaler, {"hidden": 32, "threshold": threshold}, LEARNER
        )
    # Another model that passes the bar too: the same weights, a lower threshold.
    dirs["good-b"] = save_model_dir(
        root / "good-b",
        trained,
        scaler,
        {"hidden": 32, "threshold": thresholds["good"] * 0.8},
        LEARNER,
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
        lock=Lock("promote", str(world["root"] / "locks")),
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
        lock=Lock("promote", str(world["root"] / "locks")),
    )
    assert not decision.promoted, decision.reason
    assert "precision" in decision.reason and "< floor 1.010" in decision.reason
    assert champion_version(uri, NAME) is None


HOLD = 8.0
"""How long a promotion that read the champion waits at the barrier for the other one."""


def _promote_in_child(args):
    """One run's gate step. Both children start it together (``start``); inside, after
    reading the champion, each waits up to ``HOLD`` s at ``inside`` for the other. With the
    lock the other cannot get there, the wait times out and the first decides alone; without
    it both pass the barrier having read the same champion (none), and both would promote."""
    import threading

    from pipelines.ml import promotion

    uri, world, version, lock, start, inside = args
    read_champion = promotion.champion_version

    def read_then_wait(*a):
        before = read_champion(*a)
        try:
            inside.wait(timeout=HOLD)
        except threading.BrokenBarrierError:
            pass
        return before

    promotion.champion_version = read_then_wait
    start.wait(timeout=120)
    decision = promotion.promote(
        uri,
        NAME,
        version,
        world["lake"],
        use_case=USE_CASE,
        gate=USE_CASE.gate.with_bar(0.3, 0.5),  # the later one cannot beat the first by 0.5
        lock=lock,
    )
    return decision.as_dict()


@pytest.fixture(params=["file", "postgresql"])
def promotion_lock(request, world):
    from tests.services import postgres_url

    url = postgres_url() if request.param == "postgresql" else None
    return Lock(f"promote-{NAME}-{os.getpid()}-{request.param}", str(world["root"] / "locks"), url)


def test_two_overlapping_promotions_of_different_models_have_exactly_one_winner(
    world, tmp_path, promotion_lock
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _register(world, uri, "good", "run-a")
    second = _register(world, uri, "good-b", "run-b")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        start, inside = manager.Barrier(2), manager.Barrier(2)
        decisions = pool.map(
            _promote_in_child,
            [(uri, world, v, promotion_lock, start, inside) for v in (first, second)],
        )
    # The two models differ (another decision threshold): each scores its own holdout F1.
    assert decisions[0]["challenger_metrics"] != decisions[1]["challenger_metrics"]
    (winner,) = [d for d in decisions if d["promoted"]]
    (loser,) = [d for d in decisions if not d["promoted"]]
    assert winner["champion_before"] is None
    # The loser decided after the winner moved the alias, against the winner, and says so.
    assert loser["champion_before"] == loser["champion_after"] == winner["challenger"]
    assert f"does not beat champion v{winner['challenger']}" in loser["reason"], loser["reason"]
    assert champion_version(uri, NAME) == winner["challenger"]
    # The alias history: one promotion, over no one; the loser was never champion.
    tags = {v: version_tags(uri, NAME, v) for v in (first, second)}
    assert tags[winner["challenger"]][PROMOTED_OVER_TAG] == ""
    assert PROMOTED_OVER_TAG not in tags[loser["challenger"]]
