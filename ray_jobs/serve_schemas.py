"""The serving contract: what Serve configs pass to the builders, and what clients send and get.

The record a client sends is the use case's (``Learner.request_model``); the request and answer
around it are the same for every use case.

Kept apart from the deployments so a client, a test or the FastAPI baseline can validate
requests exactly as the endpoint does without importing Ray Serve.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model, model_validator

MAX_RECORDS = 1024


class PredictorArgs(BaseModel):
    """What a Serve config passes to ``app_builder``: everything but the model version, which
    is the deployment's ``user_config`` (``ModelChoice``), so changing it reloads in place."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    use_case: str = Field(min_length=1, description="The use case whose learner scores")
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

    use_case: str = Field(min_length=1, description="The use case whose records it takes")
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
    capture: dict | None = Field(
        None,
        description="Inference capture to the lake (pipelines.monitoring.capture.CaptureConfig "
        "without use_case: root, rate, batch_rows, max_rows, flush_interval_s); off when None",
    )


def request_model_for(record_model: type[BaseModel]) -> type[BaseModel]:
    """The ``/predict`` body of a use case: ``{"records": [...]}`` with 1 to ``MAX_RECORDS`` of
    its records (``Learner.request_model``), or one bare record, scored as a batch of one."""

    def one_record(cls, data):
        if isinstance(data, dict) and "records" not in data:
            return {"records": [data]}
        return data

    return create_model(
        "PredictRequest",
        __validators__={"one_record": model_validator(mode="before")(classmethod(one_record))},
        records=(list[record_model], Field(min_length=1, max_length=MAX_RECORDS)),
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    served_by: Literal["stable", "canary", "pinned"]
    predictions: list[dict[str, Any]] = Field(
        description="One per record, in order: the use case's score and decision fields (a "
        "classifier adds its label and class probabilities)"
    )


class Problem(BaseModel):
    message: str


MAX_FEEDBACK = 10_000
"""Labels one ``/feedback`` call may carry (each call is one file in the lake)."""


class FeedbackLabel(BaseModel):
    """The truth about one served record, learned later."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        min_length=1, max_length=128, description="The answer's X-Request-Id header"
    )
    row: int = Field(0, ge=0, description="The record's position in that request")
    label: StrictBool | float = Field(
        description="Whether the case was positive (a failure, a rejected part); for a "
        "regressor, the true value"
    )


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[FeedbackLabel] = Field(min_length=1, max_length=MAX_FEEDBACK)


class FeedbackResponse(BaseModel):
    labels: int = Field(description="Labels written (all of the call's, or none)")
