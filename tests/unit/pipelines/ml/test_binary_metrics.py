"""The binary metrics and curves computed from counts and one sort (what keeps the driver's
evaluation small on a large holdout) are scikit-learn's, on scores with many ties, with few
rows, with one class only and with no rows at all."""

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_curve,
)

from pipelines.ml import evaluation
from pipelines.ml.evaluation import binary_figures, binary_metrics, ranked_counts


def _draw(rows: int, positives: float, decimals: int | None, seed: int):
    rng = np.random.default_rng(seed)
    target = (rng.random(rows) < positives).astype(np.float32)
    scores = (rng.random(rows) * 0.6 + target * 0.3).astype(np.float32)
    if decimals is not None:  # many rows share a score
        scores = np.round(scores, decimals).astype(np.float32)
    return scores, target


DRAWS = [(20_000, 0.05, 2), (20_000, 0.2, None), (9, 0.3, 1), (500, 0.0, 2), (500, 1.0, 2)]


@pytest.mark.parametrize(("rows", "positives", "decimals"), DRAWS)
@pytest.mark.parametrize("threshold", [0.05, 0.5, 0.95])
def test_the_metrics_are_scikit_learn_s(rows, positives, decimals, threshold, monkeypatch):
    monkeypatch.setattr(evaluation, "CHUNK_ROWS", 4_096)  # several chunks per computation
    scores, target = _draw(rows, positives, decimals, seed=rows + decimals if decimals else 1)
    got = binary_metrics(scores, target, threshold)
    predicted = (scores >= threshold).astype(int)
    both = 0 < target.sum() < len(target)
    expected = {
        "pr_auc": average_precision_score(target, scores) if both else 0.0,
        "f1": f1_score(target, predicted, zero_division=0),
        "precision": precision_score(target, predicted, zero_division=0),
        "recall": recall_score(target, predicted, zero_division=0),
        "brier": brier_score_loss(target, scores),
    }
    for name, value in expected.items():
        # scikit-learn squares float32 scores in float32; the sums here are in float64.
        tolerance = 1e-6 if name == "brier" else 1e-12
        assert got[name] == pytest.approx(value, rel=tolerance, abs=tolerance), name
    assert got["rows"] == rows and got["positives"] == int(target.sum())


def test_no_rows_give_zeros_not_an_error():
    got = binary_metrics(np.zeros(0, np.float32), np.zeros(0, np.float32), 0.5)
    assert got["rows"] == 0 and got["pr_auc"] == got["f1"] == got["brier"] == got["ece"] == 0.0


@pytest.mark.parametrize(("rows", "positives", "decimals"), DRAWS[:3])
def test_the_counts_give_scikit_learn_s_curves(rows, positives, decimals):
    scores, target = _draw(rows, positives, decimals, seed=7)
    false_pos, true_pos, thresholds = ranked_counts(scores, target)
    precision, recall, pr_thresholds = precision_recall_curve(target, scores)
    np.testing.assert_array_equal(thresholds, pr_thresholds[::-1])
    np.testing.assert_allclose(precision[:-1][::-1], true_pos / (true_pos + false_pos))
    np.testing.assert_allclose(recall[:-1][::-1], true_pos / target.sum())
    false_alarms, hits, _ = roc_curve(target, scores, drop_intermediate=False)
    np.testing.assert_allclose(false_alarms[1:], false_pos / (len(target) - target.sum()))
    np.testing.assert_allclose(hits[1:], true_pos / target.sum())


def test_a_large_holdout_s_curves_are_drawn_with_a_bounded_number_of_points(tmp_path, monkeypatch):
    drawn = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.plot

    def plot(self, *args, **kwargs):
        drawn.append(len(args[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    scores, target = _draw(50_000, 0.1, None, seed=3)
    paths = binary_figures(scores, target, 0.5, tmp_path)
    assert [p.name for p in paths] == ["pr_curve.png", "roc_curve.png", "confusion_matrix.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    curves = [n for n in drawn if n > 2]  # the ROC figure's diagonal has two points
    assert len(curves) == 2 and max(curves) <= evaluation.PLOT_POINTS, drawn
