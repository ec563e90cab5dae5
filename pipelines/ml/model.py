"""The failure classifier and its on-disk form (weights + scaler + metadata, no pickles).

A model directory holds ``weights.pt`` (a plain state dict, loaded with ``weights_only=True`` so
a tampered file cannot run code), ``scaler.json`` and ``model.json`` (architecture and metrics).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipelines.ml.features import FEATURE_NAMES, Scaler, feature_matrix

WEIGHTS_FILE = "weights.pt"
SCALER_FILE = "scaler.json"
META_FILE = "model.json"


def build_model(hidden: int = 64, n_features: int = len(FEATURE_NAMES)) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


def save_model_dir(directory: str | Path, state_dict: dict, scaler: Scaler, meta: dict) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, out / WEIGHTS_FILE)
    (out / SCALER_FILE).write_text(json.dumps(scaler.as_dict()))
    (out / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return out


class LoadedModel:
    """A model ready to score records: the network, its scaler and its metadata."""

    def __init__(self, directory: str | Path):
        root = Path(directory)
        self.meta: dict = json.loads((root / META_FILE).read_text())
        self.scaler = Scaler.from_dict(json.loads((root / SCALER_FILE).read_text()))
        self.net = build_model(hidden=int(self.meta["hidden"]))
        state = torch.load(root / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval()
        self.threshold = float(self.meta.get("threshold", 0.5))

    def predict_proba(self, columns: pd.DataFrame | Mapping[str, Sequence]) -> np.ndarray:
        """Failure probabilities; ``columns`` as ``feature_matrix`` takes them (a DataFrame,
        or ``record_columns(records)``)."""
        features = self.scaler.transform(feature_matrix(columns))
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(features)).squeeze(-1)
        return torch.sigmoid(logits).numpy()
