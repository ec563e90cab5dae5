"""The client side of serving: predict over HTTP, and smoke-test a live endpoint.

Deploying is ``pipelines.serving.rollout``; this module is what a smoke test, the demo and a user's
code need to talk to the endpoint.
"""

from __future__ import annotations

import logging
import math

import httpx

from pipelines.serving.routing import VERSION_HEADER

log = logging.getLogger(__name__)


class DeployError(RuntimeError):
    pass


def _headers(token: str = "", version: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if version:
        headers[VERSION_HEADER] = str(version)
    return headers


def predict(
    endpoint: str,
    records: list[dict],
    *,
    token: str = "",
    version: str | None = None,
    timeout: float = 30.0,
) -> dict:
    """POST records; ``version`` pins the request to that deployed model version."""
    response = httpx.post(
        f"{endpoint}/predict",
        json={"records": records},
        headers=_headers(token, version),
        timeout=timeout,
    )
    if response.status_code != 200:
        raise DeployError(f"{endpoint}/predict answered {response.status_code}: {response.text}")
    return response.json()


def smoke_test(
    endpoint: str,
    expected: str | tuple[str | None, ...],
    *,
    records: list[dict],
    score_field: str,
    score_range: tuple[float, float] = (0.0, 1.0),
    token: str = "",
    pinned: bool = False,
) -> dict:
    """Real requests against the live endpoint: an expected version answers sane scores
    (``score_field`` of each prediction, finite and within ``score_range``) for the use
    case's sample ``records``,
    and malformed input is refused with 422 rather than crashing a replica. ``pinned`` sends
    the request to ``expected`` by header (a version with no traffic yet)."""
    allowed = {str(v) for v in (expected if isinstance(expected, tuple) else (expected,)) if v}
    pin = next(iter(allowed)) if pinned else None
    sample = records
    answer = predict(endpoint, sample, token=token, version=pin)
    problems = []
    if answer.get("model_version") not in allowed:
        problems.append(f"served version {answer.get('model_version')} not in {sorted(allowed)}")
    predictions = answer.get("predictions", [])
    if len(predictions) != len(sample):
        problems.append(f"{len(predictions)} predictions for {len(sample)} records")
    low, high = score_range
    scores = [p.get(score_field) for p in predictions]
    if not all(
        isinstance(s, int | float) and math.isfinite(s) and low <= s <= high for s in scores
    ):
        problems.append(f"{score_field} missing, not finite or outside [{low}, {high}]: {scores}")
    bad = httpx.post(
        f"{endpoint}/predict",
        json={"records": "not a list of records"},
        headers=_headers(token, pin),
        timeout=30,
    )
    if bad.status_code != 422:
        problems.append(f"malformed request answered {bad.status_code}, expected 422")
    if problems:
        raise DeployError(f"smoke test of {endpoint} failed: {'; '.join(problems)}")
    log.info("smoke test passed endpoint=%s version=%s", endpoint, answer["model_version"])
    return {
        "endpoint": endpoint,
        "model_version": answer["model_version"],
        "predictions": predictions,
    }


def smoke_test_routing(
    endpoint: str,
    routing: dict,
    *,
    records: list[dict],
    score_field: str,
    score_range: tuple[float, float] = (0.0, 1.0),
    token: str = "",
) -> dict:
    """Smoke-test the live endpoint against a rollout's routing: the answer must come from the
    stable version or the canary."""
    return smoke_test(
        endpoint,
        (routing["stable"], routing.get("canary")),
        records=records,
        score_field=score_field,
        score_range=score_range,
        token=token,
    )
