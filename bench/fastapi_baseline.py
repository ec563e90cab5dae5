"""The serving baseline for ``bench.serve_latency`` and ``bench.serve_images``: the same model
directory and the same request handling as the Serve app (the learner's record model, or, for
a learner that reads its own requests such as image files, its ``parse_request`` in a worker
thread), in a plain FastAPI app under one uvicorn worker (no router hop, no batching).
``BENCH_MODEL_DIR`` names the model, ``BENCH_USE_CASE`` its use case."""

from __future__ import annotations

import os

from fastapi import FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from pipelines.catalog import learner_of
from pipelines.ml.learner import RequestError
from pipelines.ml.model import LoadedModel
from ray_jobs.serve_schemas import request_model_for

LEARNER = learner_of(os.environ.get("BENCH_USE_CASE", "predictive_maintenance"))
PredictRequest = request_model_for(LEARNER.request_model)
app = FastAPI()
model = LoadedModel(os.environ["BENCH_MODEL_DIR"], LEARNER)


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


def _answer(records: list[dict]) -> dict:
    probabilities = model.score(LEARNER.record_columns(records)).tolist()
    return {
        "model_version": "baseline",
        "predictions": [LEARNER.prediction(p, model.threshold) for p in probabilities],
    }


if LEARNER.parses_requests:

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        try:
            records = await run_in_threadpool(LEARNER.parse_request, content_type, body)
        except RequestError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        return _answer(records)

else:

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict:
        return _answer([r.model_dump() for r in body.records])
