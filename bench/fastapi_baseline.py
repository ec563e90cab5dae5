"""The serving baseline for ``bench.serve_latency``: the same model directory and the same
request validation as the Serve app, in a plain FastAPI app under one uvicorn worker (no
router hop, no batching)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from pipelines.ml.model import LoadedModel
from pipelines.usecases.predictive_maintenance.learner import LEARNER
from ray_jobs.serve_schemas import request_model_for

PredictRequest = request_model_for(LEARNER.request_model)
app = FastAPI()
model = LoadedModel(os.environ["BENCH_MODEL_DIR"], LEARNER)


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@app.post("/predict")
def predict(body: PredictRequest) -> dict:
    records = [r.model_dump() for r in body.records]
    probabilities = model.score(LEARNER.record_columns(records)).tolist()
    return {
        "model_version": "baseline",
        "predictions": [LEARNER.prediction(p, model.threshold) for p in probabilities],
    }
