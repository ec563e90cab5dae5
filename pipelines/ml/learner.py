"""The learning half of the use-case contract: what a use case's model reads, how it is built,
trained, judged and served, as one object the core calls at every ML stage (the training
driver, the evaluation and promotion gate, the Serve predictor and router, smoke tests).

``Learner`` is the core's default task, a binary classifier on tabular features; a use case
subclasses it and writes only what differs. What it must write: ``inputs`` (the request's
fields), ``feature_names`` and ``features`` (inputs -> a float32 matrix, one definition for
training and serving, so the two cannot drift apart), ``target`` (the label column),
``sample_records`` (requests a new model must answer before it gets traffic) and, unless the
default is right, ``request_model`` (what the endpoint accepts; ``record_model`` derives one
from the table's schema and ranges). What it may override: the network (``build_model``), the
loss, which rows the headline metrics are computed on (``headline_rows``) and extra holdout
metrics (``extra_metrics``).

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

    # How it is judged ------------------------------------------------------------------
    def headline_rows(self, frame):
        """The holdout rows the gate metric is computed on (default: all of them). A use
        case leaves out rows no model can predict by construction."""
        return frame

    def extra_metrics(self, probabilities: np.ndarray, frame, threshold: float) -> dict:
        """Holdout metrics of the use case's own, computed on all holdout rows (``frame``) and
        their ``probabilities``; shown in the report and kept with the model."""
        return {}

    # How it is served ------------------------------------------------------------------
    def prediction(self, probability: float, threshold: float) -> dict:
        return {self.score_field: probability, self.decision_field: probability >= threshold}

    def check(self, owner: str) -> None:
        """A one-line error naming what this learner lacks."""
        missing = [
            name
            for name in ("inputs", "feature_names", "target", "sample_records", "request_model")
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(
                f"use case {owner}: learner {type(self).__name__} does not set {', '.join(missing)}"
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
