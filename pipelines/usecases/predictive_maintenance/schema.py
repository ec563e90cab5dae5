"""The telemetry table's contract: columns, types and physical ranges (AI4I 2020 style)."""

from __future__ import annotations

LABEL_COLUMNS: tuple[str, ...] = ("machine_failure", "twf", "hdf", "pwf", "osf", "rnf")
"""``machine_failure`` is the OR of the five failure modes."""

SCHEMA: dict[str, str] = {
    "machine_id": "string",
    "timestamp": "datetime64[us, UTC]",
    "product_type": "string",
    "air_temperature_k": "float64",
    "process_temperature_k": "float64",
    "rotational_speed_rpm": "float64",
    "torque_nm": "float64",
    "tool_wear_min": "int64",
    **{name: "int64" for name in LABEL_COLUMNS},
}
"""pandas dtypes of every required column, in the lake's column order."""

PRODUCT_TYPES: tuple[str, ...] = ("L", "M", "H")

PHYSICAL_RANGES: dict[str, tuple[float, float]] = {
    "air_temperature_k": (280.0, 330.0),
    "process_temperature_k": (290.0, 340.0),
    "rotational_speed_rpm": (500.0, 3500.0),
    "torque_nm": (0.0, 100.0),
    "tool_wear_min": (0, 300),
}
"""What a sensor can physically report; values outside are faults, not rare events."""

KEY_COLUMNS: tuple[str, ...] = ("machine_id", "timestamp")
"""One reading per machine per timestamp."""
