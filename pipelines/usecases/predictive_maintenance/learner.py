"""What predictive maintenance learns and serves: physics-informed features of one
machine-minute, the failure label, the request record, and the holdout rules (random failures
left out of the headline metrics, recall shown per failure mode).

The training driver, promotion gate and Serve app are the core's (``pipelines.ml.learner``);
this module is only what differs from its defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipelines.ml.learner import Learner
from pipelines.usecases.predictive_maintenance.schema import LABEL_COLUMNS, PHYSICAL_RANGES

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
FAILURE_MODES = tuple(c for c in LABEL_COLUMNS if c != TARGET)

SAMPLE_RECORDS = [
    {  # an ordinary machine-minute
        "product_type": "M",
        "air_temperature_k": 300.1,
        "process_temperature_k": 310.2,
        "rotational_speed_rpm": 1540.0,
        "torque_nm": 40.0,
        "tool_wear_min": 20,
    },
    {  # overstrained: worn tool under high torque (OSF), and low power
        "product_type": "L",
        "air_temperature_k": 302.5,
        "process_temperature_k": 310.9,
        "rotational_speed_rpm": 1300.0,
        "torque_nm": 70.0,
        "tool_wear_min": 230,
    },
]


def _reading(name: str):
    """A sensor reading: a finite number within what the sensor can physically report."""
    low, high = PHYSICAL_RANGES[name]
    return Field(ge=low, le=high, allow_inf_nan=False)


class Record(BaseModel):
    """One machine-minute of sensor readings; impossible values are rejected."""

    model_config = ConfigDict(strict=True)

    product_type: Literal["L", "M", "H"]
    air_temperature_k: float = _reading("air_temperature_k")
    process_temperature_k: float = _reading("process_temperature_k")
    rotational_speed_rpm: float = _reading("rotational_speed_rpm")
    torque_nm: float = _reading("torque_nm")
    tool_wear_min: float = _reading("tool_wear_min")


def feature_matrix(columns: Mapping[str, Sequence]) -> np.ndarray:
    """Temperature gap, power and strain next to the raw readings, as float32."""
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
    # object, not .astype(str): a fixed-width unicode copy is much slower on large frames.
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


class FailureLearner(Learner):
    inputs = INPUT_COLUMNS
    feature_names = FEATURE_NAMES
    target = TARGET
    evaluation_columns = tuple(LABEL_COLUMNS)
    score_field = "failure_probability"
    decision_field = "failure"
    sample_records = SAMPLE_RECORDS
    request_model = Record

    def features(self, columns):
        return feature_matrix(columns)

    def headline_rows(self, frame):
        """Random failures (RNF with no other mode) are unpredictable by construction."""
        others = frame[[m for m in FAILURE_MODES if m != "rnf"]].sum(axis=1)
        return frame[~((frame["rnf"] == 1) & (others == 0))]

    def extra_metrics(self, probabilities, frame, threshold):
        """Recall per failure mode, RNF included."""
        predicted = probabilities >= threshold
        recall = {}
        for mode in FAILURE_MODES:
            rows = (frame[mode] == 1).to_numpy()
            recall[mode] = float(predicted[rows].mean()) if rows.any() else None
        return {"recall_by_mode": recall}


LEARNER = FailureLearner()
