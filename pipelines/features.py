"""Feature engineering and scaling, defined once for training and serving.

Training fits a ``Scaler`` on training rows and ships it (as JSON, not a pickle) with the model
weights; the serving app applies the same ``feature_matrix`` + ``Scaler`` to request records.
"""

from __future__ import annotations

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


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Physics-informed features (temperature gap, power, strain) as float32, one row a record."""
    speed = frame["rotational_speed_rpm"].to_numpy(dtype=np.float64)
    torque = frame["torque_nm"].to_numpy(dtype=np.float64)
    air = frame["air_temperature_k"].to_numpy(dtype=np.float64)
    process = frame["process_temperature_k"].to_numpy(dtype=np.float64)
    wear = frame["tool_wear_min"].to_numpy(dtype=np.float64)
    product = frame["product_type"].astype(str).to_numpy()
    columns = [
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
    return np.column_stack(columns).astype(np.float32)


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
        if list(data["feature_names"]) != list(FEATURE_NAMES):
            raise ValueError(
                f"scaler: feature names {data['feature_names']} do not match {FEATURE_NAMES}"
            )
        return cls(list(data["mean"]), list(data["std"]), list(data["feature_names"]))
