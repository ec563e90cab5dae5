"""Validation and holdout scored by Ray Data actors on a real Ray cluster equal the driver's
own scoring, row for row: same rows in the same order, same scores, same baseline samples,
so the same threshold and metrics. Both use cases: one score per row (predictive
maintenance) and one probability per class (visual quality control, split by lot too).

Both are compared in one driver process of its own connected to the session's Ray head, as
the training job's driver is."""

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from pipelines.catalog import get_use_case
from pipelines.data import lake
from pipelines.data.ingest import ingest_days, source_arguments
from pipelines.ray_auth import find_ray_token

pytestmark = pytest.mark.integration

DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=d) for d in range(3)]

COMPARE = """
import json, sys
import numpy as np, pandas as pd, ray, torch
from pipelines.catalog import get_use_case, learner_of
from pipelines.ml import streaming
from pipelines.ml.evaluation import holdout_report
from ray_jobs.train import evaluate_on_cluster, scorer

def compare(name, files):
    use_case = get_use_case(name)
    learner = learner_of(use_case)
    scanned = streaming.scan(files, use_case.table.time_column, learner.split_group)
    split = scanned.split()
    statistics = streaming.training_statistics(
        scanned.files_before(split.train_until), split, learner, seed=3
    )
    torch.manual_seed(0)
    state = learner.build_model(len(learner.feature_names), hidden=8).state_dict()
    later = scanned.files_from(split.train_until)
    score = scorer(learner, state, 8, statistics.scaler)
    local = streaming.evaluate_splits(later, split, learner, score, seed=3)
    remote = evaluate_on_cluster(
        later, split, name, state, 8, statistics.scaler, actors=2, seed=3
    )
    out = {}
    for which, mine, theirs in zip(("validation", "holdout"), local, remote):
        pd.testing.assert_frame_equal(mine.rows, theirs.rows)
        np.testing.assert_array_equal(mine.scores, theirs.scores)
        assert mine.scores.dtype == theirs.scores.dtype, (name, theirs.scores.dtype)
        pd.testing.assert_frame_equal(mine.sample, theirs.sample)
        out[which] = {"rows": len(theirs.rows), "shape": list(theirs.scores.shape)}
    validation, holdout = remote
    threshold = learner.choose_threshold(validation.scores, learner.targets(validation.rows))
    mine = local[0]
    assert threshold == learner.choose_threshold(mine.scores, learner.targets(mine.rows))
    expected = holdout_report(local[1].score_of, local[1].rows, threshold, learner)
    got = holdout_report(holdout.score_of, holdout.rows, threshold, learner)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
    out["metrics"] = got
    return out


streaming.BATCH_ROWS = 500  # several batches per partition, on both sides
ray.init()
for name, files in json.loads(sys.argv[1]).items():
    print("COMPARED " + json.dumps({"name": name, **compare(name, files)}, default=float))
"""


USE_CASES = {"predictive_maintenance": {"machines": 6}, "visual_quality_control": {"images": 120}}


def test_scoring_on_the_cluster_equals_scoring_on_the_driver(ray_head, tmp_path):
    lakes = {}
    for name, fields in USE_CASES.items():
        use_case = get_use_case(name)
        root = str(tmp_path / name)
        ingest_days(DAYS, root, table=use_case.table, **source_arguments(use_case, fields))
        lakes[name] = [str(f) for f in lake.partition_files(root, DAYS, use_case.table.name)]
    env = {
        **os.environ,
        "RAY_ADDRESS": f"{ray_head.host}:{ray_head.ray_gcs_port}",
        # A driver of a token-auth cluster sends the token, as the job's driver does.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": find_ray_token() or "",
    }
    done = subprocess.run(
        [sys.executable, "-c", COMPARE, json.dumps(lakes)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [x for x in done.stdout.splitlines() if x.startswith("COMPARED ")]
    compared = {c["name"]: c for c in (json.loads(x.removeprefix("COMPARED ")) for x in lines)}
    assert set(compared) == set(USE_CASES)
    for name, result in compared.items():
        # Both splits were scored, with the learner's own shape of scores.
        assert result["validation"]["rows"] > 0 and result["holdout"]["rows"] > 0, name
        shape = result["holdout"]["shape"]
        if name == "predictive_maintenance":
            assert len(shape) == 1  # a probability per row
        else:
            assert len(shape) == 2 and shape[1] >= 2  # a probability per class
