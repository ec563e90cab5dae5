"""The request schemas and routing model the router enforces, without a cluster."""

import asyncio
import math
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from pipelines.serving.routing import Routing
from pipelines.usecases.predictive_maintenance.learner import SAMPLE_RECORDS, Record
from pipelines.usecases.predictive_maintenance.schema import PHYSICAL_RANGES
from ray_jobs.serve_app import Router, RoutingTable, _one_line
from ray_jobs.serve_schemas import MAX_RECORDS, ModelChoice, PredictorArgs, request_model_for

PredictRequest = request_model_for(Record)

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


def test_the_schema_publishes_each_readings_physical_range():
    """Clients, code generators and the fuzz test read the ranges from the schema."""
    properties = Record.model_json_schema()["properties"]
    for name, (low, high) in PHYSICAL_RANGES.items():
        assert (properties[name]["minimum"], properties[name]["maximum"]) == (low, high)
        with pytest.raises(ValidationError, match=name):
            PredictRequest.model_validate({**GOOD, name: high + 1})


def test_batch_size_is_bounded():
    with pytest.raises(ValidationError):
        PredictRequest.model_validate({"records": [GOOD] * (MAX_RECORDS + 1)})
    with pytest.raises(ValidationError):
        PredictRequest.model_validate({"records": []})


def test_builder_args_are_typed_and_closed():
    args = PredictorArgs(use_case="predictive_maintenance", model_name="m", tracking_uri="http://x")
    assert args.max_batch_size >= 1 and args.num_replicas == 1
    with pytest.raises(ValidationError, match="max_batch_size"):
        PredictorArgs(
            use_case="predictive_maintenance", model_name="m", tracking_uri="x", max_batch_size=0
        )
    with pytest.raises(ValidationError, match="typo"):
        PredictorArgs(use_case="predictive_maintenance", model_name="m", tracking_uri="x", typo=1)
    # The version is the slot's user_config, so that changing it reloads in place.
    with pytest.raises(ValidationError, match="model_version"):
        PredictorArgs(
            use_case="predictive_maintenance", model_name="m", tracking_uri="x", model_version="1"
        )
    assert ModelChoice.model_validate({"model_version": "champion"}).model_version == "champion"
    with pytest.raises(ValidationError, match="model_version"):
        ModelChoice.model_validate({"model_version": ""})


def test_routing_lists_each_running_version_once():
    routing = Routing(stable="3", canary="4", canary_fraction=0.2, shadow="4")
    assert routing.versions() == ["3", "4"]
    with pytest.raises(ValidationError):
        Routing(stable="3", canary_fraction=1.5)


def test_the_routing_table_refuses_a_routing_to_a_version_no_slot_holds():
    table = RoutingTable.func_or_class()
    asyncio.run(table.reconfigure({"stable": "3", "slots": {"3": "pm--slot0"}}))
    with pytest.raises(ValueError, match="no slot holds"):
        asyncio.run(table.reconfigure({"stable": "3", "canary": "4", "slots": {"3": "pm--slot0"}}))
    assert table.routing.stable == "3" and table.routing.canary is None  # kept the last good
    with pytest.raises(ValueError, match="no slot holds"):  # nothing to copy ahead from
        asyncio.run(
            table.reconfigure({"stable": "3", "incoming": "4", "slots": {"3": "pm--slot0"}})
        )


def test_the_router_hears_of_a_new_routing_at_once_and_of_none_until_then():
    async def scenario():
        table = RoutingTable.func_or_class()
        first = {"stable": "3", "slots": {"3": "pm--slot0"}}
        await table.reconfigure(first)
        held = await table.watch(None)  # a routing is there: at once
        waiting = asyncio.ensure_future(table.watch(held))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing new: the long poll waits
        await table.reconfigure({**first, "slots": {"3": "pm--slot0", "4": "pm--slot1"}})
        changed = await asyncio.wait_for(waiting, 5)
        unchanged = await table.watch(changed, timeout_s=0.05)  # no change: as it is, in time
        return held, changed, unchanged

    held, changed, unchanged = asyncio.run(scenario())
    assert held["stable"] == "3" and "4" not in held["slots"]
    assert changed["slots"]["4"] == "pm--slot1" and unchanged == changed


def test_a_router_that_stopped_following_the_routing_table_is_unhealthy():
    async def scenario():
        async def follow(fails: bool):
            if fails:
                raise ValueError("a routing it could not read")
            await asyncio.sleep(60)

        following, stopped = (asyncio.ensure_future(follow(f)) for f in (False, True))
        await asyncio.sleep(0.01)
        check = Router.func_or_class.check_health
        check(SimpleNamespace(_watching=following))  # healthy: no error
        with pytest.raises(RuntimeError, match="stopped following the routing table"):
            check(SimpleNamespace(_watching=stopped))
        following.cancel()

    asyncio.run(scenario())


def test_rollout_args_are_one_quoted_serve_target_without_secrets(monkeypatch):
    import shlex

    from pipelines.catalog import get_use_case
    from pipelines.serving.target import ServeTarget
    from pipelines.settings import ConveyorSettings
    from ray_jobs.deploy import parse_args

    monkeypatch.setenv("CONVEYOR_SERVE_ROUTE_PREFIX", "/a b")
    monkeypatch.setenv("CONVEYOR_SERVE_TOKEN", "s3cret")
    monkeypatch.setenv("CONVEYOR_SERVE_REQUIRE_AUTH", "true")
    pm = get_use_case("predictive_maintenance")
    args = ConveyorSettings().for_use_case(pm).rollout_args()
    assert "s3cret" not in args
    parsed = parse_args(["--action", "deploy", *shlex.split(args)])
    target = ServeTarget.from_json(parsed.target, token="t", ray_token=None)
    assert target.route_prefix == "/a b" and target.require_auth and target.slots == 2
    assert target.model_name == "predictive_maintenance" == target.use_case
    with pytest.raises(ValueError, match="unknown field"):
        ServeTarget.from_json('{"typo": 1}')
    with pytest.raises(ValueError, match="settings.use_case is not set"):
        ConveyorSettings().rollout_args()


def test_a_failed_rollout_writes_its_own_error_as_the_job_result(monkeypatch, tmp_path):
    """What the operator and the run report quote: the rollout's error (what failed, which
    version still serves) is the job's result, and the job still fails."""
    import json
    import shlex

    import ray_jobs.deploy as deploy
    from pipelines.catalog import get_use_case
    from pipelines.serving.client import DeployError
    from pipelines.settings import ConveyorSettings

    def rolled_back(target, action, version, fraction):
        raise DeployError(f"{action} rolled back: smoke test failed; still serving version 3")

    monkeypatch.setattr(deploy, "run_action", rolled_back)
    monkeypatch.setenv("CONVEYOR_RESULT_PATH", str(tmp_path / "result.json"))
    args = ConveyorSettings().for_use_case(get_use_case("predictive_maintenance")).rollout_args()
    with pytest.raises(DeployError, match="still serving version 3"):
        deploy.main(["--action", "deploy", "--model-version", "4", *shlex.split(args)])
    written = json.loads((tmp_path / "result.json").read_text())
    assert written == {
        "action": "deploy",
        "error": "deploy rolled back: smoke test failed; still serving version 3",
    }
