"""Reading Serve's live configs (``pipelines.serving.admin``) without a cluster: a rollout must
not take the previous config's RUNNING for its own, and must find the live routing."""

from pipelines.serving.admin import _last_line, config_matches, live_routing
from pipelines.serving.routing import ROUTING_TABLE, Routing

WANTED = {
    "name": "pm--slot0",
    "import_path": "ray_jobs.serve_app:app_builder",
    "args": {"model_name": "pm", "max_batch_size": 32},
    "deployments": [{"name": "Predictor", "user_config": {"model_version": "3"}}],
}


def _deployed(args: dict, version: str) -> dict:
    """As Serve reports it: with fields of its own that we never set."""
    return {
        "name": "pm--slot0",
        "route_prefix": None,
        "import_path": "ray_jobs.serve_app:app_builder",
        "args": args,
        "deployments": [
            {
                "name": "Predictor",
                "user_config": {"model_version": version},
                "num_replicas": 1,
            }
        ],
    }


def test_the_config_we_put_matches_whatever_serve_adds_to_it():
    assert config_matches(_deployed(WANTED["args"], "3"), WANTED)


def test_the_previous_version_still_running_is_not_the_config_we_put():
    assert not config_matches(_deployed(WANTED["args"], "2"), WANTED)
    assert not config_matches(_deployed({**WANTED["args"], "max_batch_size": 1}, "3"), WANTED)
    assert not config_matches(None, WANTED)


def test_an_app_builder_that_moved_is_a_change():
    moved = {**WANTED, "import_path": "ray_jobs.serving.app:app_builder"}
    assert not config_matches(_deployed(WANTED["args"], "3"), moved)


def test_the_live_routing_is_the_routing_tables_user_config():
    routing = Routing(stable="3", previous="2", slots={"3": "pm--slot0", "2": "pm--slot1"})
    router = {
        "name": "pm",
        "deployments": [
            {"name": "Router", "num_replicas": 1},
            {"name": ROUTING_TABLE, "user_config": routing.model_dump()},
        ],
    }
    assert live_routing({"pm": router, "other": {"name": "other"}}, "pm") == routing
    assert live_routing({"other": {"name": "other"}}, "pm") is None  # before the first deploy


def test_a_failed_deploy_is_reported_by_its_exception_not_the_traceback_header():
    message = (
        "Traceback (most recent call last):\n"
        '  File "replica.py", line 1, in reconfigure\n\n'
        "RuntimeError: version 4 of pm scored [nan, nan], not probabilities\n"
    )
    assert (
        _last_line(message) == "RuntimeError: version 4 of pm scored [nan, nan], not probabilities"
    )
    assert _last_line(None) == "no message"


def test_every_call_carries_the_ray_token_and_a_refusal_names_the_cause():
    import httpx
    import pytest

    from pipelines.serving.admin import ServeAdmin
    from pipelines.serving.client import DeployError

    seen = []

    def dashboard(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != "Bearer tok":
            return httpx.Response(401, text="Unauthorized: Missing authentication token")
        return httpx.Response(200, json={"applications": {}})

    client = httpx.Client(transport=httpx.MockTransport(dashboard))
    assert ServeAdmin("http://ray:8265", client=client, ray_token="tok").configs() == {}
    ServeAdmin("http://ray:8265", client=client, ray_token="tok").put([], "127.0.0.1", 8000)
    assert seen == ["Bearer tok", "Bearer tok"]
    with pytest.raises(DeployError, match="HTTP 401: Ray token authentication is on"):
        ServeAdmin("http://ray:8265", client=client).status()
