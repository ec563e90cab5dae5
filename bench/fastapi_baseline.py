"""The serving baseline for ``bench.serve_latency``: the same model directory and the same
request validation as the Serve app, in a plain FastAPI app under one uvicorn worker (no
router hop, no batching)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from pipelines.ml.features import record_columns
from pipelines.ml.model import LoadedModel
from ray_jobs.serve_schemas import PredictRequest

app = FastAPI()
model = LoadedModel(os.environ["BENCH_MODEL_DIR"])


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@app.post("/predict")
def predict(body: PredictRequest) -> dict:
    records = [r.model_dump() for r in body.records]
    probabilities = model.predict_proba(record_columns(records)).tolist()
    return {
        "model_version": "baseline",
        "predictions": [
            {"failure_probability": p, "failure": p >= model.threshold} for p in probabilities
        ],
    }
