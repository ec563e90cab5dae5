"""A trained model's on-disk form (weights + scaler + metadata, no pickles) and loading it.

A model directory holds ``weights.pt`` (a plain state dict, loaded with ``weights_only=True`` so
a tampered file cannot run code), ``scaler.json`` and ``model.json`` (architecture, metrics, and
the model's signature: its input features in order and its outputs). Loading checks the
signature against the scaler, against the features the use case's learner makes, and against
the weights' first layer, so a model is never fed features it was not trained on. The network
itself is the learner's (``Learner.build_model``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipelines.ml.features import Scaler
from pipelines.ml.learner import Learner

WEIGHTS_FILE = "weights.pt"
SCALER_FILE = "scaler.json"
META_FILE = "model.json"


class ModelSignatureError(ValueError):
    """A saved model does not fit what it is loaded or called with; the message says how."""


def save_model_dir(
    directory: str | Path, state_dict: dict, scaler: Scaler, meta: dict, learner: Learner
) -> Path:
    """Write a model directory; its signature (``inputs``: the scaler's features in order,
    ``outputs``: the learner's score) goes into ``model.json``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, out / WEIGHTS_FILE)
    (out / SCALER_FILE).write_text(json.dumps(scaler.as_dict()))
    signature = {"inputs": list(scaler.feature_names), "outputs": [learner.score_field]}
    (out / META_FILE).write_text(json.dumps({**meta, **signature}, indent=2, default=str))
    return out


def _check_signature(
    root: Path, meta: dict, scaler: Scaler, state: dict, learner: Learner
) -> list[str]:
    """The model's input features, checked against its scaler, the learner's features and
    its first layer."""
    inputs = list(meta.get("inputs") or scaler.feature_names)  # older models: the scaler's
    if inputs != list(scaler.feature_names):
        raise ModelSignatureError(
            f"model {root}: its signature's inputs {inputs} differ from its scaler's "
            f"{list(scaler.feature_names)}"
        )
    if inputs != list(learner.feature_names):
        raise ModelSignatureError(
            f"model {root}: trained on features {inputs}, but {type(learner).__name__} makes "
            f"{list(learner.feature_names)}"
        )
    first = next((v for k, v in state.items() if k.endswith("weight")), None)
    # A dense first layer takes every feature; a convolution's weights do not say how many.
    if first is not None and first.dim() == 2 and first.shape[-1] != len(inputs):
        raise ModelSignatureError(
            f"model {root}: its weights take {first.shape[-1]} inputs, its signature {len(inputs)}"
        )
    return inputs


class LoadedModel:
    """A model ready to score records: the network, its scaler, its metadata and the use
    case's learner (which makes its features)."""

    def __init__(self, directory: str | Path, learner: Learner):
        root = Path(directory)
        self.learner = learner
        self.meta: dict = json.loads((root / META_FILE).read_text())
        self.scaler = Scaler.from_dict(json.loads((root / SCALER_FILE).read_text()))
        state = torch.load(root / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.inputs = _check_signature(root, self.meta, self.scaler, state, learner)
        self.net = learner.build_model(len(self.inputs), hidden=int(self.meta["hidden"]))
        self.net.load_state_dict(state)
        self.net.eval()
        self.threshold = float(self.meta.get("threshold", 0.5))

    def score(self, columns: pd.DataFrame | Mapping[str, Sequence]) -> np.ndarray:
        """One score per record (probabilities for a classifier, the predicted number for a
        regressor: ``Learner.scores``); ``columns`` as ``Learner.features`` takes them (a
        DataFrame, or ``learner.record_columns(records)``)."""
        features = self.scaler.transform(self.learner.features(columns))
        with torch.inference_mode():
            return self.learner.scores(self.net(torch.from_numpy(features)).squeeze(-1)).numpy()
