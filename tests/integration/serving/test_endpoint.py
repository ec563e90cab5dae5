"""The live endpoint on a real Ray Serve: answers, metadata, strict input validation and auth."""

import datetime as dt
import json
import math
import time
import uuid

import httpx
import pytest

from pipelines.catalog import learner_of
from pipelines.monitoring.capture import read_captured
from pipelines.monitoring.feedback import live_quality, read_feedback
from pipelines.serving.rollout import deploy, wait_for_copy
from pipelines.serving.routing import REQUEST_ID_HEADER, VERSION_HEADER
from pipelines.usecases.predictive_maintenance.learner import SAMPLE_RECORDS
from pipelines.usecases.predictive_maintenance.schema import PHYSICAL_RANGES

pytestmark = pytest.mark.integration

GOOD = SAMPLE_RECORDS[0]
USE_CASE = "predictive_maintenance"


def test_one_record_or_a_batch_and_the_answer_names_the_version(served, versions):
    one = httpx.post(f"{served.endpoint}/predict", json=GOOD, timeout=30)
    assert one.status_code == 200, one.text
    assert one.headers[VERSION_HEADER] == versions["a"]
    assert one.json()["model_version"] == versions["a"]
    assert one.json()["served_by"] == "stable"
    assert len(one.json()["predictions"]) == 1

    batch = httpx.post(f"{served.endpoint}/predict", json={"records": SAMPLE_RECORDS}, timeout=30)
    assert batch.status_code == 200, batch.text
    probabilities = [p["failure_probability"] for p in batch.json()["predictions"]]
    assert len(probabilities) == 2 and all(0 <= p <= 1 for p in probabilities)
    # the overstrained machine is the riskier one
    assert probabilities[1] > probabilities[0]


def test_the_router_scores_the_stable_version_itself_with_the_slots_answers(
    served, versions, target_for
):
    # the copy arrives in the background, after the deploy returns
    assert wait_for_copy(served, versions["a"], timeout=60, scoring=True)
    hop = target_for("pm-hop", router={"mirror_stable": False})  # every request to the slot
    deploy(hop, versions["a"])
    assert httpx.get(f"{hop.endpoint}/healthz", timeout=30).json()["in_process"] is None
    records = {"records": SAMPLE_RECORDS * 3}
    here = httpx.post(f"{served.endpoint}/predict", json=records, timeout=30).json()
    there = httpx.post(f"{hop.endpoint}/predict", json=records, timeout=30).json()
    assert here["model_version"] == there["model_version"] == versions["a"]
    assert here["predictions"] == there["predictions"]


def test_health_metadata_and_openapi(served, versions):
    health = httpx.get(f"{served.endpoint}/healthz", timeout=30).json()
    assert health["status"] == "ok" and health["routing"]["stable"] == versions["a"]

    meta = httpx.get(f"{served.endpoint}/metadata", timeout=30).json()
    stable = meta["stable"]
    assert stable["model_name"] == "pm_serving_test"
    assert stable["model_version"] == versions["a"]
    assert stable["training_partitions"] == ["2026-11-03"]
    assert stable["batching"]["max_batch_size"] == 16
    assert set(stable["input_schema"]["properties"]) >= set(GOOD)
    assert meta["canary"] is None and meta["shadow"] is None

    spec = httpx.get(f"{served.endpoint}/openapi.json", timeout=30).json()
    assert {"/predict", "/healthz", "/metadata"} <= set(spec["paths"])
    assert "422" in spec["paths"]["/predict"]["post"]["responses"]
    torque = spec["components"]["schemas"]["Record"]["properties"]["torque_nm"]
    assert (torque["minimum"], torque["maximum"]) == PHYSICAL_RANGES["torque_nm"]


def _with(**changes) -> dict:
    return {"records": [{**GOOD, **changes}]}


BAD_JSON_BODIES = {
    "missing field": {"records": [{k: v for k, v in GOOD.items() if k != "torque_nm"}]},
    "wrong type": _with(torque_nm="abc"),
    "number as string": _with(torque_nm="40"),
    "boolean as number": _with(tool_wear_min=True),
    "unknown product type": _with(product_type="X"),
    "impossible temperature": _with(air_temperature_k=-5.0),
    "impossible speed": _with(rotational_speed_rpm=1e9),
    "empty batch": {"records": []},
    "oversized batch": {"records": [GOOD] * 1025},
    "records not a list": {"records": GOOD},
    "not an object": [1, 2, 3],
}

BAD_RAW_BODIES = {
    "NaN": json.dumps(_with(torque_nm=math.nan)),  # Python writes the NaN literal
    "Infinity": json.dumps(_with(torque_nm=math.inf)),
    "overflowing number": json.dumps(_with(torque_nm=12.5)).replace("12.5", "1e999"),
    "not JSON": "torque=40&speed=1500",
    "truncated JSON": json.dumps(_with())[:-5],
    "empty body": "",
    "huge body": json.dumps({"records": [GOOD], "padding": "x" * 2_000_000}),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON_BODIES))
def test_bad_json_input_is_a_readable_422(served, case):
    response = httpx.post(f"{served.endpoint}/predict", json=BAD_JSON_BODIES[case], timeout=30)
    assert response.status_code == 422, (case, response.status_code, response.text[:300])
    message = response.json()["message"]
    assert message and "\n" not in message


@pytest.mark.parametrize("case", sorted(BAD_RAW_BODIES))
def test_bad_raw_input_is_a_readable_422(served, case):
    assert BAD_RAW_BODIES[case] != json.dumps({"records": [GOOD]})
    response = httpx.post(
        f"{served.endpoint}/predict",
        content=BAD_RAW_BODIES[case],
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422, (case, response.status_code, response.text[:300])
    assert response.json()["message"]


def test_a_huge_body_without_content_length_is_refused_too(served):
    def chunks():
        yield b'{"records": ['
        for _ in range(20_000):
            yield (json.dumps(GOOD) + ",").encode()
        yield json.dumps(GOOD).encode() + b"]}"

    response = httpx.post(f"{served.endpoint}/predict", content=chunks(), timeout=30)
    assert response.status_code == 422, response.text[:300]
    assert "exceeds the limit" in response.json()["message"]
    # and the endpoint still serves
    assert httpx.post(f"{served.endpoint}/predict", json=GOOD, timeout=30).status_code == 200


def test_pinning_a_version_that_is_not_deployed_is_a_404(served):
    response = httpx.post(
        f"{served.endpoint}/predict", json=GOOD, headers={VERSION_HEADER: "999"}, timeout=30
    )
    assert response.status_code == 404
    assert "999" in response.json()["message"]


def test_bearer_auth_when_required(versions, target_for):
    """The token comes from the Serve node's environment (CONVEYOR_SERVE_TOKEN, set for the
    test cluster); health and the OpenAPI document stay open."""
    from pipelines.settings import get_settings

    token = get_settings().serve_token.get_secret_value()
    assert token
    # Capture off (its arguments left out): feedback has no answers to join.
    target = target_for("pm-auth", require_auth=True, token=token, router={})
    deploy(target, versions["a"])  # its smoke requests carry the token

    url = f"{target.endpoint}/predict"
    assert httpx.post(url, json=GOOD, timeout=30).status_code == 401
    wrong = httpx.post(url, json=GOOD, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert token not in wrong.text
    ok = httpx.post(url, json=GOOD, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert ok.status_code == 200 and token not in ok.text
    assert httpx.get(f"{target.endpoint}/metadata", timeout=30).status_code == 401
    assert httpx.get(f"{target.endpoint}/healthz", timeout=30).status_code == 200
    assert httpx.get(f"{target.endpoint}/openapi.json", timeout=30).status_code == 200
    label = {"labels": [{"request_id": "r", "label": True}]}
    feedback = f"{target.endpoint}/feedback"
    assert httpx.post(feedback, json=label, timeout=30).status_code == 401
    off = httpx.post(feedback, json=label, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert off.status_code == 404 and "capture is off" in off.json()["message"]


def test_answered_requests_are_captured_to_the_lake_with_their_id(served, versions, local_stack):
    """Capture is on by default (``capture_rate`` 1.0): each answered request's records, its
    answers, the version and the request id reach ``<lake>/_served/<use case>`` within a flush
    interval; a refused request is not captured."""
    sent = {}
    for i in range(3):
        request_id = f"capture-{uuid.uuid4().hex}"
        records = SAMPLE_RECORDS[: 1 + i % 2]
        answer = httpx.post(
            f"{served.endpoint}/predict",
            json={"records": records},
            headers={REQUEST_ID_HEADER: request_id},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers[REQUEST_ID_HEADER] == request_id
        sent[request_id] = (records, answer.json()["predictions"])
    refused = httpx.post(f"{served.endpoint}/predict", json=_with(torque_nm="abc"), timeout=30)
    assert refused.status_code == 422
    assert httpx.post(f"{served.endpoint}/predict", json=GOOD, timeout=30).headers[
        REQUEST_ID_HEADER
    ]  # one is made up when the client sends none

    now = dt.datetime.now(dt.UTC)
    window = (now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    rows: list[dict] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        table = read_captured(local_stack.lake, "predictive_maintenance", *window)
        rows = [r for r in table.to_pylist() if r["_request_id"] in sent]
        if len(rows) == sum(len(records) for records, _ in sent.values()):
            break
        time.sleep(1)
    for request_id, (records, predictions) in sent.items():
        mine = [r for r in rows if r["_request_id"] == request_id]
        assert [{k: r[k] for k in GOOD} for r in mine] == records
        assert [r["_score"] for r in mine] == [p["failure_probability"] for p in predictions]
        assert {r["_model_version"] for r in mine} == {versions["a"]}
        assert {r["_served_by"] for r in mine} == {"stable"}
    stats = httpx.get(f"{served.endpoint}/metadata", timeout=30).json()["capture_stats"]
    assert stats["written"] >= len(rows) and stats.get("dropped", 0) == 0


def test_feedback_posted_to_the_endpoint_joins_its_captured_answer(served, local_stack):
    """``POST /feedback`` keeps the truth learned later about an answer (by its request id and
    position) in the lake before it replies, where the monitoring pass joins it to the
    captured answer; a call with one bad label writes none of its labels."""
    learner = learner_of(USE_CASE)
    request_id = f"feedback-{uuid.uuid4().hex}"
    answer = httpx.post(
        f"{served.endpoint}/predict",
        json={"records": SAMPLE_RECORDS[:2]},
        headers={REQUEST_ID_HEADER: request_id},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    decided = [p[learner.decision_field] for p in answer.json()["predictions"]]
    truth = [not decided[0], decided[1]]  # the first answer was wrong, the second right

    def post(labels):
        return httpx.post(f"{served.endpoint}/feedback", json={"labels": labels}, timeout=30)

    today = dt.datetime.now(dt.UTC).date()
    before = len(read_feedback(local_stack.lake, USE_CASE, today))
    bad = post([{"request_id": request_id, "label": True}, {"request_id": "x", "label": 0.7}])
    assert bad.status_code == 422 and "0.7" in bad.json()["message"]
    assert post([{"request_id": request_id, "label": True, "extra": 1}]).status_code == 422
    assert post([]).status_code == 422
    assert len(read_feedback(local_stack.lake, USE_CASE, today)) == before  # nothing written

    kept = post([{"request_id": request_id, "row": row, "label": t} for row, t in enumerate(truth)])
    assert kept.status_code == 200, kept.text
    assert kept.json() == {"labels": 2}
    labels = read_feedback(local_stack.lake, USE_CASE, today)
    mine = labels[labels["_request_id"] == request_id].sort_values("_row")
    assert mine["label"].tolist() == truth  # in the lake when the call returned

    now = dt.datetime.now(dt.UTC)
    deadline, served_rows = time.monotonic() + 60, None
    while time.monotonic() < deadline:  # the capture flushes within its interval
        table = read_captured(local_stack.lake, USE_CASE, now - dt.timedelta(hours=1), now)
        served_rows = table.to_pandas()
        served_rows = served_rows[served_rows["_request_id"] == request_id]
        if len(served_rows) == 2:
            break
        time.sleep(1)
    quality = live_quality(served_rows, mine, learner)
    assert quality["labelled"] == 2 and quality["coverage"] == 1.0
    assert (quality["precision"], quality["recall"]) == _expected(decided, truth)


def _expected(decided: list[bool], truth: list[bool]) -> tuple:
    tp = sum(d and t for d, t in zip(decided, truth, strict=True))
    fp = sum(d and not t for d, t in zip(decided, truth, strict=True))
    fn = sum(t and not d for d, t in zip(decided, truth, strict=True))
    return (tp / (tp + fp) if tp + fp else None, tp / (tp + fn) if tp + fn else None)
