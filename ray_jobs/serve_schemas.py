"""The serving contract: what Serve configs pass to the builders, and what clients send and get.

Kept apart from the deployments so a client, a test or the FastAPI baseline can validate
requests exactly as the endpoint does without importing Ray Serve.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.usecases.predictive_maintenance.schema import PHYSICAL_RANGES

MAX_RECORDS = 1024


class PredictorArgs(BaseModel):
    """What a Serve config passes to ``app_builder``: everything but the model version, which
    is the deployment's ``user_config`` (``ModelChoice``), so changing it reloads in place."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_name: str = Field(min_length=1)
    tracking_uri: str = Field(min_length=1)
    num_replicas: int = Field(1, ge=1)
    num_cpus: float = Field(
        0.25, gt=0, description="CPUs Ray reserves per replica (a scheduling share, not a cap)"
    )
    max_batch_size: int = Field(32, ge=1, le=MAX_RECORDS)
    batch_wait_timeout_s: float = Field(
        0.002,
        ge=0.0,
        le=1.0,
        description="How long a partial batch waits for more requests while others are in "
        "flight (a lone request never waits)",
    )


class ModelChoice(BaseModel):
    """The predictor deployment's ``user_config``: which registered version it serves."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_version: str = Field(
        min_length=1, description="A registered version number, or an alias such as champion"
    )


class RouterArgs(BaseModel):
    """What a Serve config passes to ``router_builder``; the routing itself is the
    ``RoutingTable``'s user_config."""

    model_config = ConfigDict(extra="forbid")

    app_name: str = Field(min_length=1)
    num_replicas: int = Field(1, ge=1)
    require_auth: bool = False
    max_body_bytes: int = Field(1_000_000, ge=1024)
    request_timeout_s: float = Field(30.0, gt=0)
    mirror_stable: bool = Field(
        True,
        description="Score the stable version in the router's own process, from a copy of "
        "its slot's model (StableMirror), instead of a call to the slot's process",
    )


def _reading(name: str):
    """A sensor reading: a finite number within what the sensor can physically report. Declared
    as constraints, not a validator, so the ranges are in the OpenAPI document and the
    ``/metadata`` input schema, where client generators and the fuzz test read them."""
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


class PredictRequest(BaseModel):
    """``{"records": [...]}``, or one bare record (scored as a batch of one)."""

    records: list[Record] = Field(min_length=1, max_length=MAX_RECORDS)

    @model_validator(mode="before")
    @classmethod
    def one_record(cls, data):
        if isinstance(data, dict) and "records" not in data and "product_type" in data:
            return {"records": [data]}
        return data


class Prediction(BaseModel):
    failure_probability: float
    failure: bool


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    served_by: Literal["stable", "canary", "pinned"]
    predictions: list[Prediction]


class Problem(BaseModel):
    message: str
