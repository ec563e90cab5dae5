"""The learning half of the use-case contract: what a use case's model reads, how it is built,
trained, judged and served, as one object the core calls at every ML stage (the training
driver, the evaluation and promotion gate, the Serve predictor and router, smoke tests).

``Learner`` is the core's default task, a binary classifier on tabular features, and
``Regressor`` the other one it ships (a number per record, judged by MAE); a use case
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

    def figures(self, scores: np.ndarray, targets: np.ndarray, threshold: float, out_dir):
        """Holdout figures (PNG files in ``out_dir``): a PR curve and a confusion matrix."""
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

    # How it is served ------------------------------------------------------------------
    def prediction(self, score: float, threshold: float) -> dict:
        """One record's answer: its score and the decision at the model's threshold."""
        return {self.score_field: score, self.decision_field: score >= threshold}

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

    def figures(self, scores, targets, threshold, out_dir):
        from pipelines.ml.evaluation import regression_figures

        return regression_figures(scores, targets, out_dir)

    def valid_scores(self, scores) -> bool:
        return all(np.isfinite(s) for s in scores)

    def prediction(self, score: float, threshold: float) -> dict:
        return {self.score_field: score}


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
