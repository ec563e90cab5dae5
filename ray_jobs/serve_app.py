"""Ray Serve application: the registered failure classifier behind a typed HTTP API.

Built by ``app_builder(args)`` from a declarative Serve config (``import_path:
ray_jobs.serve_app:app_builder``). Requests are validated by pydantic (bad input is a 422, not a
500) and scored through ``@serve.batch`` so concurrent requests share one forward pass.
"""

from __future__ import annotations

import math
import tempfile
from typing import Literal

import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, Field, field_validator
from ray import serve
from ray.serve import Application

from pipelines.model import LoadedModel
from pipelines.registry import download_version
from pipelines.telemetry import PHYSICAL_RANGES

MAX_RECORDS = 1024


class Args(BaseModel):
    """What a Serve config passes to ``app_builder``."""

    model_name: str
    model_version: str
    tracking_uri: str
    num_replicas: int = Field(1, ge=1)
    max_batch_size: int = Field(32, ge=1, le=MAX_RECORDS)
    batch_wait_timeout_s: float = Field(0.01, ge=0.0, le=1.0)


class Record(BaseModel):
    """One machine-minute of sensor readings; impossible values are rejected."""

    product_type: Literal["L", "M", "H"]
    air_temperature_k: float
    process_temperature_k: float
    rotational_speed_rpm: float
    torque_nm: float
    tool_wear_min: float

    @field_validator(
        "air_temperature_k",
        "process_temperature_k",
        "rotational_speed_rpm",
        "torque_nm",
        "tool_wear_min",
    )
    @classmethod
    def physically_possible(cls, value: float, info) -> float:
        low, high = PHYSICAL_RANGES[info.field_name]
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"must be a finite number in [{low}, {high}]")
        return value


class PredictRequest(BaseModel):
    records: list[Record] = Field(min_length=1, max_length=MAX_RECORDS)


class Prediction(BaseModel):
    failure_probability: float
    failure: bool


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


api = FastAPI(title="Conveyor predictive maintenance", version="1")


@serve.deployment(ray_actor_options={"num_cpus": 0.5})
@serve.ingress(api)
class FailurePredictor:
    def __init__(self, args: Args):
        self.args = args
        directory = download_version(
            args.tracking_uri, args.model_name, args.model_version, tempfile.mkdtemp()
        )
        self.model = LoadedModel(directory)
        self._score.set_max_batch_size(args.max_batch_size)
        self._score.set_batch_wait_timeout_s(args.batch_wait_timeout_s)

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("no model loaded")

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def _score(self, frames: list[pd.DataFrame]) -> list[list[float]]:
        sizes = [len(f) for f in frames]
        probabilities = self.model.predict_proba(pd.concat(frames, ignore_index=True)).tolist()
        out, start = [], 0
        for size in sizes:
            out.append(probabilities[start : start + size])
            start += size
        return out

    @api.post("/predict")
    async def predict(self, request: PredictRequest) -> PredictResponse:
        frame = pd.DataFrame([r.model_dump() for r in request.records])
        probabilities = await self._score(frame)
        return PredictResponse(
            model_name=self.args.model_name,
            model_version=self.args.model_version,
            predictions=[
                Prediction(failure_probability=p, failure=p >= self.model.threshold)
                for p in probabilities
            ],
        )

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok", "model_version": self.args.model_version}

    @api.get("/metadata")
    def metadata(self) -> dict:
        return {
            "model_name": self.args.model_name,
            "model_version": self.args.model_version,
            "threshold": self.model.threshold,
            "train_dates": self.model.meta.get("train_dates"),
            "metrics": self.model.meta.get("metrics"),
            "feature_names": self.model.scaler.feature_names,
        }


def app_builder(args: dict) -> Application:
    parsed = Args.model_validate(args)
    return FailurePredictor.options(num_replicas=parsed.num_replicas).bind(parsed)
