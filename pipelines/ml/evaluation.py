"""How a model is judged: one definition for training, the promotion gate and tests.

The split is by time, never random: train on the first 70 % of the period, choose the decision
threshold on the next 10 %, report on the latest 20 % (the holdout). The metrics are the
learner's (``Learner.evaluate``: classification metrics by default, MAE and RMSE for a
``Regressor``), computed on the rows it counts (``Learner.headline_rows``); its own extra
metrics (``Learner.extra_metrics``) on all holdout rows. The functions below are the
building blocks the core's two tasks use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pipelines.ml.learner import Learner


@dataclass(frozen=True)
class TimeSplit:
    train_until: pd.Timestamp
    holdout_from: pd.Timestamp
    time_column: str

    @classmethod
    def of(cls, frame: pd.DataFrame, time_column: str, group: str | None = None) -> TimeSplit:
        """70/10/20 % of the period; with ``group``, each boundary moves back to the start of
        a group it would cut, so no group (a production lot) has rows on both sides."""
        timestamps = frame[time_column]
        spans = None
        if group is not None:
            spans = frame.groupby(group, observed=True)[time_column].agg(["min", "max"])
        return cls.from_bounds(timestamps.min(), timestamps.max(), time_column, spans)

    @classmethod
    def from_bounds(
        cls,
        start: pd.Timestamp,
        end: pd.Timestamp,
        time_column: str,
        spans: pd.DataFrame | None = None,
    ) -> TimeSplit:
        """The same split from the period's first and last timestamps and, for a grouped
        split, each group's first and last (``spans``: columns ``min`` and ``max``): all it
        needs, so it can be computed without holding the rows (``pipelines.ml.streaming``)."""
        span = end - start
        train_until, holdout_from = start + 0.7 * span, start + 0.8 * span
        if spans is not None:
            train_until = _group_start(spans, train_until)
            holdout_from = max(_group_start(spans, holdout_from), train_until)
        return cls(train_until, holdout_from, time_column)

    def train(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame[self.time_column] < self.train_until]

    def validation(self, frame: pd.DataFrame) -> pd.DataFrame:
        ts = frame[self.time_column]
        return frame[(ts >= self.train_until) & (ts < self.holdout_from)]

    def holdout(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame[self.time_column] >= self.holdout_from]

    def as_dict(self) -> dict:
        return {
            "train_until": self.train_until.isoformat(),
            "holdout_from": self.holdout_from.isoformat(),
        }


def _group_start(spans: pd.DataFrame, boundary: pd.Timestamp) -> pd.Timestamp:
    """``boundary`` moved back until no group (``spans``: min and max time per group) has
    rows both before and at-or-after it."""
    while True:
        cut = spans[(spans["min"] < boundary) & (spans["max"] >= boundary)]
        if cut.empty:
            return boundary
        boundary = cut["min"].min()


CHUNK_ROWS = 1 << 20
"""Rows a per-row computation below takes at a time: its temporaries are per chunk, so the
holdout's size does not multiply the driver's memory."""


def _chunks(rows: int):
    return (slice(start, start + CHUNK_ROWS) for start in range(0, rows, CHUNK_ROWS))


def calibration_error(probabilities: np.ndarray, target: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the gap between predicted and observed rates, per bin
    (sums per bin, a chunk of rows at a time)."""
    probabilities, target = np.asarray(probabilities), np.asarray(target)
    edges = np.linspace(0.0, 1.0, bins + 1)
    count, predicted, observed = np.zeros(bins), np.zeros(bins), np.zeros(bins)
    for rows in _chunks(len(probabilities)):
        which = np.clip(np.digitize(probabilities[rows], edges[1:-1]), 0, bins - 1)
        count += np.bincount(which, minlength=bins)
        predicted += np.bincount(which, weights=probabilities[rows], minlength=bins)
        observed += np.bincount(which, weights=target[rows], minlength=bins)
    filled = count > 0
    gaps = np.abs(predicted[filled] - observed[filled]) / count[filled]
    return float((count[filled] / max(len(probabilities), 1) * gaps).sum())


def ranked_counts(probabilities: np.ndarray, target: np.ndarray):
    """(false positives, true positives, threshold) at each distinct score, highest score
    first: what PR and ROC curves and the average precision are made of, from one sort.

    The same counts as scikit-learn's curves, kept as integers of the smallest width the rows
    allow, not float64 copies of every row: on a large holdout the curves, not the model,
    set the driver's peak."""
    scores = np.asarray(probabilities)
    positive = np.asarray(target) == 1
    order = np.argsort(scores, kind="stable")[::-1]
    ordered, hits = scores[order], positive[order]
    del order
    # The last row of each run of equal scores: every row above a threshold counts there.
    ends = np.flatnonzero(ordered[1:] != ordered[:-1])
    ends = np.append(ends, len(ordered) - 1).astype(np.int32 if len(ordered) < 2**31 else np.int64)
    true_pos = np.cumsum(hits, dtype=ends.dtype)[ends]
    false_pos = ends + 1 - true_pos
    return false_pos, true_pos, ordered[ends]


def average_precision(false_pos: np.ndarray, true_pos: np.ndarray) -> float:
    """Average precision from ``ranked_counts``: the precision at each threshold weighted by
    the recall it adds (scikit-learn's ``average_precision_score``, no interpolation)."""
    if not len(true_pos) or true_pos[-1] == 0:
        return 0.0
    tp = true_pos.astype(np.float64)
    added = np.diff(tp, prepend=0.0)
    return float((added / tp[-1] * (tp / (tp + false_pos))).sum())


def binary_metrics(probabilities: np.ndarray, target: np.ndarray, threshold: float) -> dict:
    """Precision, recall and F1 at ``threshold``, PR-AUC (average precision), Brier score and
    calibration error: scikit-learn's definitions (zero where undefined), from counts and
    one sort rather than per-metric float64 copies of every row."""
    probabilities = np.asarray(probabilities)
    positive = np.asarray(target) == 1
    predicted = probabilities >= threshold
    rows, positives = len(positive), int(np.count_nonzero(positive))
    flagged, hits = int(np.count_nonzero(predicted)), int(np.count_nonzero(predicted & positive))
    del predicted
    squared = sum(
        float(np.square(probabilities[part].astype(np.float64) - positive[part]).sum())
        for part in _chunks(rows)
    )
    return {
        "pr_auc": average_precision(*ranked_counts(probabilities, positive)[:2])
        if 0 < positives < rows
        else 0.0,
        "f1": 2 * hits / (flagged + positives) if flagged + positives else 0.0,
        "precision": hits / flagged if flagged else 0.0,
        "recall": hits / positives if positives else 0.0,
        "brier": squared / rows if rows else 0.0,
        "ece": calibration_error(probabilities, positive) if rows else 0.0,
        "threshold": float(threshold),
        "rows": int(rows),
        "positives": positives,
    }


def best_f1_threshold(probabilities: np.ndarray, target: np.ndarray) -> float:
    """The threshold with the best F1 on validation data (never on the holdout), among 0.05,
    0.10, …, 0.95 (the first on ties). One sort and a count per candidate, not a full
    evaluation per candidate: F1 = 2·TP / (2·TP + FP + FN), and 0 with no positive at all."""
    candidates = np.linspace(0.05, 0.95, 19)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    positive = np.asarray(target) == 1
    ordered = np.sort(probabilities[positive])
    others = np.sort(probabilities[~positive])
    true_pos = len(ordered) - np.searchsorted(ordered, candidates, side="left")
    false_pos = len(others) - np.searchsorted(others, candidates, side="left")
    false_neg = len(ordered) - true_pos
    denominator = 2 * true_pos + false_pos + false_neg
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros(len(candidates)), where=denominator > 0)
    return float(candidates[int(np.argmax(f1))])


def regression_metrics(predictions: np.ndarray, target: np.ndarray) -> dict:
    errors = np.asarray(predictions, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return {
        "mae": float(np.abs(errors).mean()) if len(errors) else 0.0,
        "rmse": float(np.sqrt((errors**2).mean())) if len(errors) else 0.0,
        "bias": float(errors.mean()) if len(errors) else 0.0,
        "rows": int(len(errors)),
    }


def holdout_report(score, frame: pd.DataFrame, threshold: float, learner: Learner) -> dict:
    """The learner's metrics on its headline rows, plus its extra metrics on all rows.

    ``score`` maps a frame to scores.
    """
    kept = learner.headline_rows(frame)
    report = learner.evaluate(score(kept), learner.targets(kept), threshold)
    report.update(learner.extra_metrics(score(frame), frame, threshold))
    return report


REFERENCE_SCORE_ROWS = 5_000


def reference_scores(
    learner: Learner,
    scores: np.ndarray,
    threshold: float,
    limit: int = REFERENCE_SCORE_ROWS,
    seed: int = 0,
) -> list[float]:
    """Up to ``limit`` holdout scores as the endpoint answers them (the learner's
    ``prediction(...)[score_field]``: a probability, an alarm probability, a prediction), a
    seeded sample: the reference the monitoring DAG measures prediction drift against."""
    scores = np.asarray(scores)
    if len(scores) > limit:
        scores = scores[np.sort(np.random.default_rng(seed).choice(len(scores), limit, False))]
    field = learner.score_field
    return [float(learner.prediction(score, threshold)[field]) for score in scores]


BASELINE_ROWS = 200_000
"""Baselines are fitted on at most this many training rows (a seeded sample): a reference,
not a contender, and their cost must not grow with the data."""


def _sample(frame: pd.DataFrame, rows: int = BASELINE_ROWS) -> pd.DataFrame:
    return frame.sample(rows, random_state=0) if len(frame) > rows else frame


def logistic_baseline(
    learner: Learner, train: pd.DataFrame, validation: pd.DataFrame, holdout: pd.DataFrame
) -> dict:
    """A logistic regression on the same features and scaler, for reference (multinomial for
    a ``Classifier``)."""
    from sklearn.linear_model import LogisticRegression

    from pipelines.ml.features import Scaler

    train = _sample(train)
    scaler = Scaler.fit(learner.features(train), learner.feature_names)
    model = LogisticRegression(max_iter=500, class_weight="balanced")
    model.fit(scaler.transform(learner.features(train)), learner.targets(train))

    classes = getattr(learner, "classes", ())

    def score(frame: pd.DataFrame) -> np.ndarray:
        features = scaler.transform(learner.features(frame))
        if classes:  # a Classifier: one probability per class
            return _class_probabilities(model, features, len(classes))
        return model.predict_proba(features)[:, 1]

    threshold = learner.choose_threshold(score(validation), learner.targets(validation))
    return holdout_report(score, holdout, threshold, learner)


def _class_probabilities(model, features: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` with a column per class, also for classes the sample lacked."""
    out = np.zeros((len(features), n_classes))
    out[:, model.classes_.astype(int)] = model.predict_proba(features)
    return out


def linear_baseline(learner: Learner, train: pd.DataFrame, holdout: pd.DataFrame) -> dict:
    """A ridge regression on the same features and scaler, for reference."""
    from sklearn.linear_model import Ridge

    from pipelines.ml.features import Scaler

    train = _sample(train)
    scaler = Scaler.fit(learner.features(train), learner.feature_names)
    model = Ridge(alpha=1.0).fit(scaler.transform(learner.features(train)), learner.targets(train))

    def score(frame: pd.DataFrame) -> np.ndarray:
        return model.predict(scaler.transform(learner.features(frame)))

    return holdout_report(score, holdout, 0.0, learner)


def regression_figures(predictions: np.ndarray, target: np.ndarray, out_dir) -> list:
    """Predicted vs actual on the holdout, as a PNG in ``out_dir``; its path."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(target, predictions, s=4, alpha=0.4)
    ax.set(xlabel="actual", ylabel="predicted", title="Holdout: predicted vs actual")
    fig.tight_layout()
    fig.savefig(out / "predicted_vs_actual.png", dpi=100)
    plt.close(fig)
    return [out / "predicted_vs_actual.png"]


PLOT_POINTS = 2_000
"""Points a curve is drawn with: more than a 400-pixel figure can show, far fewer than a
large holdout's distinct scores."""


def _thinned(*curves: np.ndarray, points: int = PLOT_POINTS) -> tuple[np.ndarray, ...]:
    """The curves at ``points`` evenly spaced positions, both ends kept."""
    if len(curves[0]) <= points:
        return curves
    keep = np.unique(np.linspace(0, len(curves[0]) - 1, points).astype(np.int64))
    return tuple(curve[keep] for curve in curves)


def binary_figures(
    probabilities: np.ndarray, target: np.ndarray, threshold: float, out_dir
) -> list:
    """A PR curve, a ROC curve and a confusion matrix as PNG files in ``out_dir``; their
    paths. The curves come from ``ranked_counts`` and are drawn with at most
    ``PLOT_POINTS`` points each."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    positive = np.asarray(target) == 1
    false_pos, true_pos, _ = ranked_counts(probabilities, positive)
    positives, negatives = int(np.count_nonzero(positive)), int(len(positive) - positive.sum())
    tp = true_pos.astype(np.float64)
    flagged = tp + false_pos
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    recall = tp / positives if positives else np.ones_like(tp)
    # scikit-learn's curve ends at (recall 0, precision 1).
    recall, precision = _thinned(np.append(recall[::-1], 0.0), np.append(precision[::-1], 1.0))
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", title="Holdout PR curve")
    fig.tight_layout()
    fig.savefig(out / "pr_curve.png", dpi=100)
    plt.close(fig)
    paths = [out / "pr_curve.png"]

    if positives and negatives:  # a ROC curve needs both classes in the holdout
        hits, false_alarms = _thinned(
            np.append(0.0, tp / positives), np.append(0.0, false_pos / negatives)
        )
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(false_alarms, hits)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set(xlabel="false positive rate", ylabel="recall", title="Holdout ROC curve")
        fig.tight_layout()
        fig.savefig(out / "roc_curve.png", dpi=100)
        plt.close(fig)
        paths.append(out / "roc_curve.png")
    del false_pos, true_pos, tp, flagged

    predicted = np.asarray(probabilities) >= threshold
    hit = int(np.count_nonzero(predicted & positive))
    flagged_rows = int(np.count_nonzero(predicted))
    matrix = np.array(
        [
            [negatives - (flagged_rows - hit), flagged_rows - hit],
            [positives - hit, hit],
        ]
    )
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual")
    ax.set_title(f"Confusion matrix at threshold {threshold:.2f}")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    return [*paths, out / "confusion_matrix.png"]


def false_alarm_threshold(normal_scores: np.ndarray, max_false_alarm: float) -> float:
    """The lowest alarm threshold at which at most ``max_false_alarm`` of the normal rows'
    ``normal_scores`` reach it (an alarm is ``score >= threshold``)."""
    ordered = np.sort(np.asarray(normal_scores, dtype=np.float64))[::-1]
    if not len(ordered):
        return 0.5
    allowed = int(np.floor(max_false_alarm * len(ordered)))  # normal rows that may alarm
    if allowed >= len(ordered):
        return 0.0
    # Above the (allowed+1)-th highest normal score: exactly ``allowed`` rows (ties aside) alarm.
    return float(min(np.nextafter(ordered[allowed], np.inf), 1.0))


def multiclass_metrics(learner, scores: np.ndarray, target: np.ndarray, threshold: float) -> dict:
    """A ``Classifier``'s holdout metrics: macro-F1, accuracy and per-class precision/recall of
    its labels, the alarm's recall and false-alarm rate at ``threshold``, the alarm's AUROC,
    and the confusion matrix (rows: actual, columns: predicted, in ``learner.classes`` order)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    target = np.asarray(target).astype(np.int64)
    classes = list(learner.classes)
    labels = list(range(len(classes)))
    predicted = learner.predicted_labels(scores, threshold) if len(target) else target
    precision, recall, f1, support = precision_recall_fscore_support(
        target, predicted, labels=labels, zero_division=0
    )
    present = support > 0
    alarm = learner.alarm_scores(scores) if len(target) else np.zeros(0)
    abnormal = target != learner.normal_index
    raised = alarm >= threshold
    name = learner.alarm_name
    return {
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "accuracy": float((predicted == target).mean()) if len(target) else 0.0,
        f"{name}_recall": float(raised[abnormal].mean()) if abnormal.any() else 0.0,
        "false_alarm_rate": float(raised[~abnormal].mean()) if (~abnormal).any() else 0.0,
        f"{name}_auroc": (
            float(roc_auc_score(abnormal, alarm)) if 0 < abnormal.sum() < len(target) else 0.0
        ),
        "threshold": float(threshold),
        "rows": int(len(target)),
        f"{name}s": int(abnormal.sum()),
        "per_class": {
            c: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion": confusion_matrix(target, predicted, labels=labels).tolist(),
    }


def multiclass_figures(learner, scores, target, threshold: float, out_dir) -> list:
    """The confusion matrix of a ``Classifier``'s labels as a PNG in ``out_dir``; its path."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(multiclass_metrics(learner, scores, target, threshold)["confusion"])
    ticks = range(len(learner.classes))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="actual")
    ax.set_xticklabels(learner.classes, rotation=45)
    ax.set_yticklabels(learner.classes)
    ax.set_title("Holdout confusion matrix")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    return [out / "confusion_matrix.png"]
