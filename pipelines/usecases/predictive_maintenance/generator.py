"""Deterministic per-minute machine telemetry following the published AI4I 2020 rules.

Matzka (2020), "Explainable Artificial Intelligence for Predictive Maintenance Applications":
product quality L/M/H (50/30/20 %), air temperature around 300 K (sd 2 K), process temperature
air + 10 K (sd 1 K), rotational speed around 1540 rpm with torque around 40 Nm (sd 10 Nm),
tool wear growing by 2/3/5 minutes (L/M/H) per process, and five failure modes:

* TWF, tool wear failure: the tool fails when its wear reaches a random limit in [200, 240];
* HDF, heat dissipation: air/process temperature gap < 8.6 K and speed < 1380 rpm;
* PWF, power: torque x angular speed outside [3500, 9000] W;
* OSF, overstrain: tool wear x torque above 11000 (L), 12000 (M), 13000 (H) min Nm;
* RNF, random: 0.1 % of processes regardless of the process parameters.

One row is one machine-minute. The same ``(seed, date, machines)`` always yields the same rows,
so re-ingesting a day gives byte-identical data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipelines.usecases.predictive_maintenance.schema import SCHEMA

MINUTES_PER_DAY = 1440
OSF_LIMIT = {"L": 11000.0, "M": 12000.0, "H": 13000.0}
WEAR_PER_MINUTE = {"L": 2, "M": 3, "H": 5}


@dataclass(frozen=True)
class GeneratorConfig:
    machines: int = 50
    minutes: int = MINUTES_PER_DAY
    seed: int = 42
    rnf_probability: float = 0.001
    sensor_offset_k: float = 0.0
    """Drift switch: a miscalibrated air-temperature sensor reads this many kelvin off. The
    machines behave as before (failures follow the true temperature); only the reading moves,
    the kind of drift a monitor must catch before the model's answers quietly degrade."""


def _rng(seed: int, day: dt.date) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal()])


def _ar1(rng: np.random.Generator, shape: tuple[int, int], sd: float, phi: float = 0.98):
    """Mean-zero AR(1) random walk with stationary standard deviation ``sd``."""
    noise = rng.normal(0.0, sd * np.sqrt(1 - phi**2), size=shape)
    out = np.empty(shape)
    out[:, 0] = rng.normal(0.0, sd, size=shape[0])
    for t in range(1, shape[1]):
        out[:, t] = phi * out[:, t - 1] + noise[:, t]
    return out


def generate_day(day: dt.date, config: GeneratorConfig | None = None) -> pd.DataFrame:
    """Telemetry of ``config.machines`` machines for every minute of ``day`` (UTC)."""
    cfg = config or GeneratorConfig()
    if cfg.machines < 1 or not 1 <= cfg.minutes <= MINUTES_PER_DAY:
        raise ValueError(
            f"generator: machines must be >= 1 and minutes in [1, {MINUTES_PER_DAY}],"
            f" got machines={cfg.machines} minutes={cfg.minutes}"
        )
    rng = _rng(cfg.seed, day)
    n_m, n_t = cfg.machines, cfg.minutes
    # The machine park's product mix is fixed by the seed alone, not by the day.
    product = np.random.default_rng(cfg.seed).choice(["L", "M", "H"], size=n_m, p=[0.5, 0.3, 0.2])

    air = 300.0 + _ar1(rng, (n_m, n_t), 2.0)
    process = air + 10.0 + _ar1(rng, (n_m, n_t), 1.0)
    speed = np.clip(rng.normal(1540.0, 180.0, (n_m, n_t)), 1168.0, 2886.0)
    torque = np.clip(40.0 - 0.045 * (speed - 1540.0) + rng.normal(0.0, 6.5, (n_m, n_t)), 3.8, 76.6)

    wear_step = np.array([WEAR_PER_MINUTE[p] for p in product])
    osf_limit = np.array([OSF_LIMIT[p] for p in product])
    wear = np.empty((n_m, n_t), dtype=np.int64)
    twf = np.zeros((n_m, n_t), dtype=np.int64)
    current = rng.integers(0, 200, size=n_m)
    tool_limit = rng.integers(200, 241, size=n_m)
    osf = np.zeros((n_m, n_t), dtype=np.int64)
    for t in range(n_t):
        current = current + wear_step
        wear[:, t] = current
        failed_tool = current >= tool_limit
        twf[:, t] = failed_tool
        osf[:, t] = current * torque[:, t] > osf_limit
        # A failed tool or an overstrain stops the process; the tool is replaced.
        replaced = failed_tool | (osf[:, t] == 1)
        current = np.where(replaced, 0, current)
        tool_limit = np.where(replaced, rng.integers(200, 241, size=n_m), tool_limit)

    hdf = ((process - air) < 8.6) & (speed < 1380.0)
    power_w = torque * speed * 2.0 * np.pi / 60.0
    pwf = (power_w < 3500.0) | (power_w > 9000.0)
    rnf = rng.random((n_m, n_t)) < cfg.rnf_probability
    failure = twf.astype(bool) | hdf | pwf | osf.astype(bool) | rnf

    start = pd.Timestamp(day, tz="UTC")
    timestamps = pd.date_range(start, periods=n_t, freq="min", unit="us")
    frame = pd.DataFrame(
        {
            "machine_id": np.repeat([f"M{i:04d}" for i in range(n_m)], n_t),
            "timestamp": np.tile(timestamps, n_m),
            "product_type": np.repeat(product, n_t),
            "air_temperature_k": (air + cfg.sensor_offset_k).ravel().round(2),
            "process_temperature_k": process.ravel().round(2),
            "rotational_speed_rpm": speed.ravel().round(1),
            "torque_nm": torque.ravel().round(2),
            "tool_wear_min": wear.ravel(),
            "machine_failure": failure.ravel(),
            "twf": twf.ravel(),
            "hdf": hdf.ravel(),
            "pwf": pwf.ravel(),
            "osf": osf.ravel(),
            "rnf": rnf.ravel(),
        }
    )
    return frame.astype(SCHEMA)


SCHEMA_DRIFTS = ("none", "extra_column", "missing_column")


@dataclass(frozen=True)
class FaultConfig:
    """Faults to inject into generated data, so every validation rule can be demonstrated."""

    null_ratio: float = 0.0
    """Fraction of sensor readings set to null."""
    out_of_range_ratio: float = 0.0
    """Fraction of rows with a physically impossible torque."""
    duplicate_ratio: float = 0.0
    """Fraction of rows repeated with the same key but a different reading."""
    schema_drift: str = "none"
    """``extra_column`` adds an unknown column; ``missing_column`` drops ``torque_nm``."""

    def __post_init__(self):
        for name in ("null_ratio", "out_of_range_ratio", "duplicate_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"faults: {name} must be in [0, 1], got {getattr(self, name)}")
        if self.schema_drift not in SCHEMA_DRIFTS:
            raise ValueError(f"faults: schema_drift must be one of {', '.join(SCHEMA_DRIFTS)}")

    @property
    def any(self) -> bool:
        return self != FaultConfig()


SENSOR_COLUMNS = ("air_temperature_k", "process_temperature_k", "rotational_speed_rpm", "torque_nm")


def inject_faults(frame: pd.DataFrame, faults: FaultConfig, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with the requested faults, deterministic per seed."""
    rng = np.random.default_rng([seed, 7])
    out = frame.copy()
    n = len(out)
    if faults.null_ratio:
        for column in SENSOR_COLUMNS:
            out.loc[rng.random(n) < faults.null_ratio, column] = np.nan
    if faults.out_of_range_ratio:
        out.loc[rng.random(n) < faults.out_of_range_ratio, "torque_nm"] = 1000.0
    if faults.duplicate_ratio:
        dupes = out[rng.random(n) < faults.duplicate_ratio].copy()
        dupes["air_temperature_k"] = dupes["air_temperature_k"] + 0.5
        out = pd.concat([out, dupes], ignore_index=True)
    if faults.schema_drift == "extra_column":
        out["firmware_version"] = "2.4.1"
    elif faults.schema_drift == "missing_column":
        out = out.drop(columns=["torque_nm"])
    return out


@dataclass(frozen=True)
class GeneratedDays:
    """The generator as the core's ingest calls it (``pipelines.data.ingest.DayGenerator``):
    a day of telemetry, with the faults injected, and what the manifest records of it."""

    config: GeneratorConfig = GeneratorConfig()
    faults: FaultConfig = FaultConfig()

    def __call__(self, day: dt.date) -> pd.DataFrame:
        frame = generate_day(day, self.config)
        if self.faults.any:
            frame = inject_faults(frame, self.faults, seed=self.config.seed)
        return frame

    def describe(self) -> dict:
        return {"generator": asdict(self.config), "faults": asdict(self.faults)}
