"""Feature scaling, fitted in training and shipped with the model (as JSON, not a pickle).

The features themselves are a use case's (``Learner.features``): one definition for training
and serving. Training fits a ``Scaler`` on the training rows' features; the Serve predictor
applies the same features and scaler to request records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Scaler:
    """Standardisation fitted on training features; serialisable as plain JSON."""

    mean: list[float]
    std: list[float]
    feature_names: list[str]

    @classmethod
    def fit(cls, features: np.ndarray, feature_names: Sequence[str]) -> Scaler:
        if features.shape[1] != len(feature_names):
            raise ValueError(
                f"scaler: {features.shape[1]} feature columns for {len(feature_names)} names"
            )
        std = features.std(axis=0)
        std[std == 0] = 1.0
        return cls(features.mean(axis=0).tolist(), std.tolist(), list(feature_names))

    def transform(self, features: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The standardised features as float32; with ``out`` (a float32 array of their
        shape, ``features`` itself included), written there: the same numbers, no copy."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if out is not None:
            np.subtract(features, mean, out=out)
            return np.divide(out, std, out=out)
        return ((features - mean) / std).astype(np.float32)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, expected: Sequence[str] | None = None) -> Scaler:
        """A scaler from its JSON; ``expected``, when given, are the feature names the caller
        makes, and any other order or set is refused."""
        names = list(data["feature_names"])
        if not len(names) == len(data["mean"]) == len(data["std"]):
            raise ValueError(
                f"scaler: {len(names)} feature names for {len(data['mean'])} means and "
                f"{len(data['std'])} standard deviations"
            )
        if expected is not None and names != list(expected):
            raise ValueError(f"scaler: feature names {names} do not match {list(expected)}")
        return cls(list(data["mean"]), list(data["std"]), names)
