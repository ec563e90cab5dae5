"""The learning half of the use-case contract: what a use case's model reads, how it is built,
trained, judged and served, as one object the core calls at every ML stage (the training
driver, the evaluation and promotion gate, the Serve predictor and router, smoke tests).

``Learner`` is the core's default task, a binary classifier on tabular features;
``Regressor`` (a number per record, judged by MAE) and ``Classifier`` (one of several classes,
one of them normal, judged by recall at a fixed false-alarm rate) are the others; a use case
subclasses one and writes only what differs. What it must write: ``inputs`` (the request's
fields), ``feature_names`` and ``features`` (inputs -> a float32 matrix, one definition for
training and serving, so the two cannot drift apart), ``target`` (the label column),
``sample_records`` (requests a new model must answer before it gets traffic) and, unless the
default is right, ``request_model`` (what the endpoint accepts; ``record_model`` derives one
from the table's schema and ranges). What it may override: the network (``build_model``), the
loss, which rows the headline metrics are computed on (``headline_rows``) and extra holdout
metrics (``extra_metrics``). A different task overrides how scores are made and judged
(``scores``, ``choose_threshold``, ``evaluate``, ``baseline``, ``figures``, ``prediction``),
as ``Regressor`` does.

A use case names its learner in its spec by import path (``UseCase.learner``); the core
imports it where it trains or serves (``pipelines.catalog.learner_of``), never where DAGs are
parsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from pipelines.usecase import RequestError  # noqa: F401  part of the learner's contract


class Learner:
    """A binary classifier on tabular features (the default task). Subclass it per use case."""

    inputs: ClassVar[tuple[str, ...]] = ()
    """The fields of one request record, which are also lake columns."""
    feature_names: ClassVar[tuple[str, ...]] = ()
    """The columns of ``features``' matrix, in order; saved in the model's signature."""
    target: ClassVar[str] = ""
    """The label column (0/1) in the lake."""
    score_field: ClassVar[str] = "probability"
    """The name of the score in each prediction the endpoint returns."""
    decision_field: ClassVar[str] = "positive"
    """The name of the decision (score >= the model's threshold) in each prediction."""
    sample_records: ClassVar[list[dict]] = []
    """Valid requests: a new model must score them before it replaces anything or gets
    traffic, and smoke tests send them."""
    request_model: ClassVar[Any] = None
    """A pydantic model of one record: what the endpoint validates (422 on anything else) and
    documents in its OpenAPI schema."""
    hidden: ClassVar[int] = 64
    """Width of the default network's hidden layers."""
    max_pos_weight: ClassVar[float] = 20.0
    """Cap of the positive class's loss weight (negatives / positives in the training rows)."""
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    """What a sane score is: a model scoring outside it is refused before it gets traffic."""

    # What the model reads --------------------------------------------------------------
    def features(self, columns: Mapping[str, Sequence]) -> np.ndarray:
        """``columns`` (a DataFrame, or ``record_columns(records)``) as a float32 matrix with
        ``len(feature_names)`` columns."""
        raise NotImplementedError(f"{type(self).__name__}.features")

    def record_columns(self, records: list[dict]) -> dict[str, list]:
        """Request records as columns for ``features``: plain lists, no DataFrame (on the
        request path a DataFrame costs more than scoring a small model)."""
        return {name: [record[name] for record in records] for name in self.inputs}

    def targets(self, frame) -> np.ndarray:
        return frame[self.target].to_numpy(dtype=np.float32)

    @property
    def training_columns(self) -> tuple[str, ...]:
        """The lake columns ``features`` and ``targets`` read: the inputs and the target.
        Training reads only these (and the time column) of the lake, so a wide table costs
        only what the model uses; a learner whose features read another column adds it."""
        return tuple(dict.fromkeys([*self.inputs, self.target]))

    # The model -------------------------------------------------------------------------
    def build_model(self, n_features: int, hidden: int | None = None):
        """The network: features in, one logit out."""
        from torch import nn

        width = int(hidden or self.hidden)
        return nn.Sequential(
            nn.Linear(n_features, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 1),
        )

    def loss(self, pos_weight: float):
        import torch
        from torch import nn

        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight)))

    def pos_weight(self, targets: np.ndarray) -> float:
        positives = float(np.sum(targets))
        return min((len(targets) - positives) / max(positives, 1.0), self.max_pos_weight)

    def scores(self, logits):
        """The network's outputs (a tensor, one per record) as scores: probabilities here."""
        import torch

        return torch.sigmoid(logits)

    # How it is judged ------------------------------------------------------------------
    def choose_threshold(self, scores: np.ndarray, targets: np.ndarray) -> float:
        """The decision threshold, chosen on the validation rows (never the holdout)."""
        from pipelines.ml.evaluation import best_f1_threshold

        return best_f1_threshold(scores, targets)

    def evaluate(self, scores: np.ndarray, targets: np.ndarray, threshold: float) -> dict:
        """Holdout metrics; the use case's gate metric must be one of them."""
        from pipelines.ml.evaluation import binary_metrics

        return binary_metrics(scores, targets, threshold)

    def baseline(self, train, validation, holdout) -> dict:
        """A simple model's holdout metrics on the same features, for reference: a logistic
        regression fitted on a bounded sample of the training rows."""
        from pipelines.ml.evaluation import logistic_baseline

        return logistic_baseline(self, train, validation, holdout)

    def figures(
        self, scores: np.ndarray, targets: np.ndarray, threshold: float, out_dir, rows=None
    ):
        """Holdout figures (PNG files in ``out_dir``): a PR curve and a confusion matrix.
        ``rows`` are the holdout rows scored (a DataFrame), for figures that show them."""
        from pipelines.ml.evaluation import binary_figures

        return binary_figures(scores, targets, threshold, out_dir)

    def valid_scores(self, scores: Sequence[float]) -> bool:
        low, high = self.score_range
        return all(low <= s <= high for s in scores)  # NaN compares False: refused

    def headline_rows(self, frame):
        """The holdout rows the gate metric is computed on (default: all of them). A use
        case leaves out rows no model can predict by construction."""
        return frame

    def extra_metrics(self, probabilities: np.ndarray, frame, threshold: float) -> dict:
        """Holdout metrics of the use case's own, computed on all holdout rows (``frame``) and
        their ``probabilities``; shown in the report and kept with the model."""
        return {}

    evaluation_columns: ClassVar[tuple[str, ...]] = ()
    """The lake columns ``targets``, ``headline_rows``, ``extra_metrics`` and ``figures``
    read. Training keeps only these (and each row's scores) of the validation and holdout
    rows, so evaluating does not hold the lake (``pipelines.ml.streaming``); empty: every
    column is kept."""

    # How it is trained -----------------------------------------------------------------
    split_group: ClassVar[str | None] = None
    """A column whose groups (a production lot, a patient) must not straddle the time split:
    near-identical rows of one group on both sides would leak the holdout into training."""

    def augment(self, features, generator):
        """A training batch (a float tensor, scaled features) as the network should see it this
        step: random flips, rotations, jitter for images. Default: unchanged. Never applied to
        validation, holdout or requests. ``features`` is already on the training device (a
        GPU's augmentation runs there); ``generator`` is a CPU generator, so draw random
        numbers on the CPU and move them to ``features.device``."""
        return features

    # How it is served ------------------------------------------------------------------
    parses_requests: ClassVar[bool] = False
    """True when the endpoint's body is this learner's to read (``parse_request``): files,
    images, audio. False: JSON records validated by ``request_model``."""

    def parse_request(self, content_type: str, body: bytes) -> list[dict]:
        """The records of a request body (when ``parses_requests``); bad input raises
        ``RequestError`` with its HTTP status and a one-line cause. Runs in a worker thread,
        off the endpoint's event loop."""
        raise NotImplementedError(f"{type(self).__name__}.parse_request")

    request_media_types: ClassVar[tuple[str, ...]] = ("application/json",)
    """The content types the endpoint documents in its OpenAPI document."""

    def prediction(self, score: float, threshold: float) -> dict:
        """One record's answer: its score and the decision at the model's threshold."""
        return {self.score_field: score, self.decision_field: score >= threshold}

    drift_features: ClassVar[tuple[str, ...]] = ()
    """The captured columns compared with the training data for drift (numbers by PSI and
    Kolmogorov-Smirnov, others as categories); default: ``inputs``."""

    def capture_fields(self, record: dict) -> dict:
        """The columns kept of one served record (``pipelines.monitoring.capture``), named as
        in the lake's table so the use case's suite and drift checks read served traffic as
        they read training data. Default: the record's inputs. A learner whose records are
        not plain values (images) returns what is measured of them instead. Runs in the
        capture's writer thread, never on the request path."""
        return {name: record[name] for name in self.inputs if name in record}

    def check(self, owner: str) -> None:
        """A one-line error naming what this learner lacks."""
        missing = [
            name
            for name in (
                "inputs",
                "feature_names",
                "target",
                "score_field",
                "sample_records",
                "request_model",
            )
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(
                f"use case {owner}: learner {type(self).__name__} does not set {', '.join(missing)}"
            )


class Regressor(Learner):
    """A number per record (demand, remaining useful life, a price), judged by MAE: the core's
    second task. Scores are the network's output as is; there is no threshold and no
    decision field."""

    score_field: ClassVar[str] = "prediction"
    decision_field: ClassVar[str] = ""
    score_range: ClassVar[tuple[float, float]] = (-np.inf, np.inf)

    def loss(self, pos_weight: float):
        from torch import nn

        return nn.MSELoss()

    def pos_weight(self, targets: np.ndarray) -> float:
        return 1.0

    def scores(self, logits):
        return logits

    def choose_threshold(self, scores, targets) -> float:
        return 0.0

    def evaluate(self, scores, targets, threshold) -> dict:
        from pipelines.ml.evaluation import regression_metrics

        return regression_metrics(scores, targets)

    def baseline(self, train, validation, holdout) -> dict:
        """A ridge regression on the same features, fitted on a bounded sample."""
        from pipelines.ml.evaluation import linear_baseline

        return linear_baseline(self, train, holdout)

    def figures(self, scores, targets, threshold, out_dir, rows=None):
        from pipelines.ml.evaluation import regression_figures

        return regression_figures(scores, targets, out_dir)

    def valid_scores(self, scores) -> bool:
        return all(np.isfinite(s) for s in scores)

    def prediction(self, score: float, threshold: float) -> dict:
        return {self.score_field: score}


class Classifier(Learner):
    """One of several classes per record, one of them the normal one (``normal_class``): a
    part is ``ok`` or has a scratch, a crack, a stain. The core's third task.

    Scores are class probabilities (one row per record). The decision is an alarm, raised when
    the probability of not being normal reaches the model's threshold, which is chosen on the
    validation rows so that at most ``max_false_alarm`` of the normal ones raise it: a missed
    fault costs more than a false alarm, so recall is judged at a fixed false-alarm rate. An
    alarm's label is the likeliest non-normal class. Metrics: macro-F1 and per-class precision
    and recall of those labels, ``<alarm_name>_recall`` and the false-alarm rate at the
    threshold, and the alarm's AUROC."""

    classes: ClassVar[tuple[str, ...]] = ()
    """The labels, in the order of the network's outputs."""
    normal_class: ClassVar[str] = ""
    """The label that raises no alarm (``ok``)."""
    alarm_name: ClassVar[str] = "alarm"
    """What an alarm is called in metrics and answers: ``fault`` gives ``fault_recall``."""
    max_false_alarm: ClassVar[float] = 0.05
    """The share of normal validation rows allowed to raise the alarm."""
    score_field: ClassVar[str] = "alarm_probability"
    decision_field: ClassVar[str] = "alarm"

    @property
    def normal_index(self) -> int:
        return self.classes.index(self.normal_class)

    def targets(self, frame) -> np.ndarray:
        """Class indices (float32, as every learner's targets); an unknown label is an error
        naming it."""
        index = {label: i for i, label in enumerate(self.classes)}
        labels = frame[self.target].astype(object).to_numpy()
        unknown = sorted({str(v) for v in labels if v not in index})
        if unknown:
            raise ValueError(
                f"{self.target}: label(s) {', '.join(unknown)} not in {', '.join(self.classes)}"
            )
        return np.fromiter((index[v] for v in labels), dtype=np.float32, count=len(labels))

    def build_model(self, n_features: int, hidden: int | None = None):
        from torch import nn

        width = int(hidden or self.hidden)
        return nn.Sequential(
            nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, len(self.classes))
        )

    def pos_weight(self, targets: np.ndarray) -> list[float]:
        """Per-class loss weights: the square root of inverse frequency, capped."""
        counts = np.bincount(targets.astype(np.int64), minlength=len(self.classes))
        total = max(int(counts.sum()), 1)
        return [
            min(float(np.sqrt(total / (len(self.classes) * c))), self.max_pos_weight) if c else 1.0
            for c in counts
        ]

    def loss(self, pos_weight):
        import torch
        import torch.nn.functional as F
        from torch import nn

        class WeightedCrossEntropy(nn.Module):
            def __init__(self, weight):
                super().__init__()
                self.register_buffer("weight", torch.tensor(weight, dtype=torch.float32))

            def forward(self, logits, target):
                return F.cross_entropy(logits, target.long(), weight=self.weight)

        return WeightedCrossEntropy(list(pos_weight))

    def scores(self, logits):
        import torch

        return torch.softmax(logits, dim=-1)

    def alarm_scores(self, scores: np.ndarray) -> np.ndarray:
        """The probability of not being normal, per record."""
        return 1.0 - np.asarray(scores, dtype=np.float64)[:, self.normal_index]

    def predicted_labels(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """Class indices: the likeliest non-normal class where the alarm is raised, else the
        normal class."""
        scores = np.asarray(scores, dtype=np.float64)
        others = scores.copy()
        others[:, self.normal_index] = -1.0
        alarm = self.alarm_scores(scores) >= threshold
        return np.where(alarm, others.argmax(axis=1), self.normal_index)

    def choose_threshold(self, scores, targets) -> float:
        """The most recall allowed by ``max_false_alarm`` on the validation rows, at the
        threshold halfway between the lowest that allows it and the lowest-scored abnormal
        row it catches: the same recall, with no more false alarms than it costs."""
        from pipelines.ml.evaluation import false_alarm_threshold

        alarm = self.alarm_scores(scores)
        normal = np.asarray(targets) == self.normal_index
        low = false_alarm_threshold(alarm[normal], self.max_false_alarm)
        caught = alarm[~normal][alarm[~normal] >= low]
        return float((low + caught.min()) / 2) if len(caught) else low

    def evaluate(self, scores, targets, threshold) -> dict:
        from pipelines.ml.evaluation import multiclass_metrics

        return multiclass_metrics(self, scores, targets, threshold)

    def baseline(self, train, validation, holdout) -> dict:
        """A multinomial logistic regression on the same features, fitted on a bounded
        sample."""
        from pipelines.ml.evaluation import logistic_baseline

        return logistic_baseline(self, train, validation, holdout)

    def figures(self, scores, targets, threshold, out_dir, rows=None):
        from pipelines.ml.evaluation import multiclass_figures

        return multiclass_figures(self, scores, targets, threshold, out_dir)

    def valid_scores(self, scores) -> bool:
        rows = np.asarray(scores, dtype=np.float64)
        return (
            rows.ndim == 2
            and rows.shape[1] == len(self.classes)
            and bool(np.all(np.isfinite(rows)))
            and bool(np.all((rows >= 0.0) & (rows <= 1.0)))
        )

    def prediction(self, score, threshold: float) -> dict:
        """The label, the alarm's probability and decision, and every class's probability."""
        row = np.asarray([score], dtype=np.float64)
        alarm = float(self.alarm_scores(row)[0])
        label = self.classes[int(self.predicted_labels(row, threshold)[0])]
        return {
            "label": label,
            self.score_field: alarm,
            self.decision_field: alarm >= threshold,
            "probabilities": {c: float(p) for c, p in zip(self.classes, score, strict=True)},
        }

    def check(self, owner: str) -> None:
        super().check(owner)
        if self.normal_class not in self.classes:
            raise ValueError(
                f"use case {owner}: normal_class {self.normal_class!r} is not one of its classes"
            )


def record_model(
    name: str,
    inputs: Sequence[str],
    schema: Mapping[str, str],
    ranges: Mapping[str, tuple[float, float]] | None = None,
):
    """A pydantic model of one request record, derived from the lake table: strings for text
    columns, finite numbers within ``ranges`` for numeric ones. Declared as constraints, so
    they show in the OpenAPI document, where client generators and the fuzz test read them."""
    from pydantic import ConfigDict, Field, create_model

    fields = {}
    for column in inputs:
        dtype = str(schema[column])
        if dtype in ("string", "str", "object", "category"):
            fields[column] = (str, Field(min_length=1, max_length=256))
            continue
        low, high = (ranges or {}).get(column, (None, None))
        fields[column] = (float, Field(ge=low, le=high, allow_inf_nan=False))
    return create_model(name, __config__=ConfigDict(strict=True), **fields)
