"""Deploying the model with Ray Serve's REST API, and smoke-testing the live endpoint.

Deployment is declarative: we read the cluster's current Serve config, replace only our
application in it and PUT it back, so other applications on the cluster are left alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import httpx

log = logging.getLogger(__name__)

IMPORT_PATH = "ray_jobs.serve_app:app_builder"
SAMPLE_RECORDS = [
    {  # an ordinary machine-minute
        "product_type": "M",
        "air_temperature_k": 300.1,
        "process_temperature_k": 310.2,
        "rotational_speed_rpm": 1540.0,
        "torque_nm": 40.0,
        "tool_wear_min": 20,
    },
    {  # overstrained: worn tool under high torque (OSF), and low power
        "product_type": "L",
        "air_temperature_k": 302.5,
        "process_temperature_k": 310.9,
        "rotational_speed_rpm": 1300.0,
        "torque_nm": 70.0,
        "tool_wear_min": 230,
    },
]


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class Deployment:
    app_name: str
    model_name: str
    model_version: str
    endpoint: str
    status: str

    def as_dict(self) -> dict:
        return asdict(self)


def application_config(
    app_name: str, route_prefix: str, model_name: str, model_version: str, tracking_uri: str
) -> dict:
    return {
        "name": app_name,
        "route_prefix": route_prefix,
        "import_path": IMPORT_PATH,
        "args": {
            "model_name": model_name,
            "model_version": str(model_version),
            "tracking_uri": tracking_uri,
        },
    }


def _serve_status(client: httpx.Client, dashboard: str) -> dict:
    response = client.get(f"{dashboard}/api/serve/applications/")
    response.raise_for_status()
    return response.json()


def deploy_application(
    dashboard: str, app: dict, http_host: str, http_port: int, timeout: float = 300.0
) -> str:
    """PUT the merged Serve config and wait until our application is RUNNING."""
    with httpx.Client(timeout=30.0) as client:
        current = _serve_status(client, dashboard).get("applications", {})
        others = [
            entry["deployed_app_config"]
            for name, entry in current.items()
            if name != app["name"] and entry.get("deployed_app_config")
        ]
        body = {
            "http_options": {"host": http_host, "port": http_port},
            "applications": [*others, app],
        }
        response = client.put(f"{dashboard}/api/serve/applications/", json=body)
        if response.status_code >= 400:
            raise DeployError(f"Serve rejected config for {app['name']}: {response.text[:500]}")
        deadline = time.monotonic() + timeout
        status = "UNKNOWN"
        while time.monotonic() < deadline:
            entry = _serve_status(client, dashboard).get("applications", {}).get(app["name"], {})
            status = entry.get("status", "NOT_STARTED")
            deployed_args = (entry.get("deployed_app_config") or {}).get("args")
            if status == "RUNNING" and deployed_args == app["args"]:
                return status
            if status == "DEPLOY_FAILED":
                raise DeployError(f"Serve app {app['name']} DEPLOY_FAILED: {entry.get('message')}")
            time.sleep(1.0)
    raise DeployError(f"Serve app {app['name']} not RUNNING after {timeout:.0f}s (last {status})")


def deploy_model(
    dashboard: str,
    *,
    app_name: str,
    route_prefix: str,
    model_name: str,
    model_version: str,
    tracking_uri: str,
    http_host: str,
    http_port: int,
    timeout: float = 300.0,
) -> Deployment:
    app = application_config(app_name, route_prefix, model_name, model_version, tracking_uri)
    status = deploy_application(dashboard, app, http_host, http_port, timeout)
    endpoint = f"http://{http_host}:{http_port}{route_prefix}"
    log.info("deployed app=%s version=%s endpoint=%s", app_name, model_version, endpoint)
    return Deployment(app_name, model_name, str(model_version), endpoint, status)


def predict(endpoint: str, records: list[dict], timeout: float = 30.0) -> dict:
    response = httpx.post(f"{endpoint}/predict", json={"records": records}, timeout=timeout)
    if response.status_code != 200:
        raise DeployError(f"{endpoint}/predict answered {response.status_code}: {response.text}")
    return response.json()


def smoke_test(endpoint: str, expected_version: str, records: list[dict] | None = None) -> dict:
    """Real requests against the live endpoint: the right version answers sane probabilities,
    and malformed input is refused with 422 rather than crashing the replica."""
    sample = records or SAMPLE_RECORDS
    answer = predict(endpoint, sample)
    problems = []
    if answer.get("model_version") != str(expected_version):
        problems.append(f"served version {answer.get('model_version')} != {expected_version}")
    predictions = answer.get("predictions", [])
    if len(predictions) != len(sample):
        problems.append(f"{len(predictions)} predictions for {len(sample)} records")
    if any(not 0.0 <= p["failure_probability"] <= 1.0 for p in predictions):
        problems.append(f"probability outside [0, 1]: {predictions}")
    bad = httpx.post(f"{endpoint}/predict", json={"records": [{"torque_nm": "abc"}]}, timeout=30)
    if bad.status_code != 422:
        problems.append(f"malformed request answered {bad.status_code}, expected 422")
    if problems:
        raise DeployError(f"smoke test of {endpoint} failed: {'; '.join(problems)}")
    log.info("smoke test passed endpoint=%s predictions=%s", endpoint, predictions)
    return {
        "endpoint": endpoint,
        "model_version": str(expected_version),
        "predictions": predictions,
    }
