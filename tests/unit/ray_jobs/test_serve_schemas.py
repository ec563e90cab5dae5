"""The request schemas and routing model the router enforces, without a cluster."""

import asyncio
import math
from functools import partial
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from pipelines.routing import Routing
from pipelines.serving import SAMPLE_RECORDS
from ray_jobs.serve_app import (
    MAX_RECORDS,
    ModelChoice,
    PredictorArgs,
    PredictRequest,
    Router,
    _one_line,
)

GOOD = SAMPLE_RECORDS[0]


def test_a_bare_record_is_a_batch_of_one():
    assert len(PredictRequest.model_validate(GOOD).records) == 1
    assert len(PredictRequest.model_validate({"records": SAMPLE_RECORDS}).records) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"torque_nm": math.nan},
        {"torque_nm": math.inf},
        {"torque_nm": "40"},
        {"tool_wear_min": True},
        {"air_temperature_k": 10.0},
        {"product_type": "Q"},
    ],
)
def test_impossible_or_mistyped_values_are_refused(change):
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate({"records": [{**GOOD, **change}]})
    message = _one_line(info.value.errors())
    assert next(iter(change)) in message and "\n" not in message


def test_batch_size_is_bounded():
    with pytest.raises(ValidationError):
        PredictRequest.model_validate({"records": [GOOD] * (MAX_RECORDS + 1)})
    with pytest.raises(ValidationError):
        PredictRequest.model_validate({"records": []})


def test_builder_args_are_typed_and_closed():
    args = PredictorArgs(model_name="m", tracking_uri="http://x")
    assert args.max_batch_size >= 1 and args.num_replicas == 1
    with pytest.raises(ValidationError, match="max_batch_size"):
        PredictorArgs(model_name="m", tracking_uri="x", max_batch_size=0)
    with pytest.raises(ValidationError, match="typo"):
        PredictorArgs(model_name="m", tracking_uri="x", typo=1)
    # The version is the slot's user_config, so that changing it reloads in place.
    with pytest.raises(ValidationError, match="model_version"):
        PredictorArgs(model_name="m", tracking_uri="x", model_version="1")
    assert ModelChoice.model_validate({"model_version": "champion"}).model_version == "champion"
    with pytest.raises(ValidationError, match="model_version"):
        ModelChoice.model_validate({"model_version": ""})


def test_routing_lists_each_running_version_once():
    routing = Routing(stable="3", canary="4", canary_fraction=0.2, shadow="4")
    assert routing.versions() == ["3", "4"]
    with pytest.raises(ValidationError):
        Routing(stable="3", canary_fraction=1.5)


def test_a_router_refuses_a_routing_to_a_version_no_slot_holds():
    # The method alone: the ingress wrapper around the class needs a replica to exist.
    router = SimpleNamespace(routing=None, mirror=None)
    reconfigure = partial(Router.func_or_class.reconfigure, router)
    asyncio.run(reconfigure({"stable": "3", "slots": {"3": "pm--slot0"}}))
    with pytest.raises(ValueError, match="no slot holds"):
        asyncio.run(reconfigure({"stable": "3", "canary": "4", "slots": {"3": "pm--slot0"}}))
    assert router.routing.stable == "3" and router.routing.canary is None  # kept the last good
    with pytest.raises(ValueError, match="no slot holds"):  # nothing to copy ahead from
        asyncio.run(reconfigure({"stable": "3", "incoming": "4", "slots": {"3": "pm--slot0"}}))


def test_rollout_args_quote_what_they_template(monkeypatch):
    from pipelines.settings import ConveyorSettings

    monkeypatch.setenv("CONVEYOR_SERVE_ROUTE_PREFIX", "/a b")
    args = ConveyorSettings().rollout_args()
    assert "--route-prefix '/a b'" in args and "--require-auth false" in args
    assert "--slots 2" in args
