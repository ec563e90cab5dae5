"""Feature engineering and scaling, defined once for training and serving.

Training fits a ``Scaler`` on training rows and ships it (as JSON, not a pickle) with the model
weights; the serving app applies the same ``feature_matrix`` + ``Scaler`` to request records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

INPUT_COLUMNS: tuple[str, ...] = (
    "product_type",
    "air_temperature_k",
    "process_temperature_k",
    "rotational_speed_rpm",
    "torque_nm",
    "tool_wear_min",
)
"""What a prediction request must carry: the sensor readings of one machine-minute."""

FEATURE_NAMES: tuple[str, ...] = (
    "product_l",
    "product_m",
    "product_h",
    "air_temperature_k",
    "process_temperature_k",
    "temperature_gap_k",
    "rotational_speed_rpm",
    "torque_nm",
    "power_w",
    "tool_wear_min",
    "strain_min_nm",
)
TARGET = "machine_failure"


def feature_matrix(columns: pd.DataFrame | Mapping[str, Sequence]) -> np.ndarray:
    """Physics-informed features (temperature gap, power, strain) as float32, one row a record.

    ``columns`` maps each of ``INPUT_COLUMNS`` to its values: a DataFrame in training and
    evaluation, ``record_columns(records)`` in serving. One definition for both is what keeps
    training and serving from drifting apart."""
    speed, torque, air, process, wear = (
        np.asarray(columns[name], dtype=np.float64)
        for name in (
            "rotational_speed_rpm",
            "torque_nm",
            "air_temperature_k",
            "process_temperature_k",
            "tool_wear_min",
        )
    )
    # object, not .astype(str): a fixed-width unicode copy made 1M rows 35% slower.
    product = np.asarray(columns["product_type"], dtype=object)
    features = [
        product == "L",
        product == "M",
        product == "H",
        air,
        process,
        process - air,
        speed,
        torque,
        torque * speed * 2.0 * np.pi / 60.0,
        wear,
        wear * torque,
    ]
    return np.column_stack(features).astype(np.float32)


def record_columns(records: list[dict]) -> dict[str, list]:
    """Request records (dicts with ``INPUT_COLUMNS``) as columns for ``feature_matrix``.

    Why not ``pd.DataFrame(records)``: for one record, building the DataFrame and reading its
    columns back took about 0.7 of the 0.8 ms that scoring it cost on a two-core machine (the
    network itself: 0.07 ms)."""
    return {name: [record[name] for record in records] for name in INPUT_COLUMNS}


def target_vector(frame: pd.DataFrame) -> np.ndarray:
    return frame[TARGET].to_numpy(dtype=np.float32)


@dataclass(frozen=True)
class Scaler:
    """Standardisation fitted on training features; serialisable as plain JSON."""

    mean: list[float]
    std: list[float]
    feature_names: list[str]

    @classmethod
    def fit(cls, features: np.ndarray) -> Scaler:
        std = features.std(axis=0)
        std[std == 0] = 1.0
        return cls(features.mean(axis=0).tolist(), std.tolist(), list(FEATURE_NAMES))

    def transform(self, features: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((features - mean) / std).astype(np.float32)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        names = list(data["feature_names"])
        if not len(names) == len(data["mean"]) == len(data["std"]):
            raise ValueError(
                f"scaler: {len(names)} feature names for {len(data['mean'])} means and "
                f"{len(data['std'])} standard deviations"
            )
        if names != list(FEATURE_NAMES):
            raise ValueError(f"scaler: feature names {names} do not match {list(FEATURE_NAMES)}")
        return cls(list(data["mean"]), list(data["std"]), names)
