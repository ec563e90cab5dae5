"""Serve's declarative REST API (on the Ray dashboard), as rollouts use it: read the live
config of every application, put ours back whole, wait until what we put is RUNNING.

Kept apart from ``pipelines.serving.rollout`` because it knows nothing of slots or routing policy:
it is the one place that talks HTTP to Serve's controller.
"""

from __future__ import annotations

import time

import httpx

from pipelines.ray_auth import auth_headers, explain_refusal
from pipelines.serving.client import DeployError
from pipelines.serving.routing import ROUTING_TABLE, Routing


class ServeAdmin:
    """Serve's REST API on the Ray dashboard: read the live config, put a new one, wait.

    ``ray_token`` is the cluster's Ray auth token (``pipelines.ray_auth``), sent on every
    request; a dashboard that refuses it is a ``DeployError`` naming the cause."""

    def __init__(
        self, dashboard: str, client: httpx.Client | None = None, ray_token: str | None = None
    ):
        self.dashboard = dashboard.rstrip("/")
        self.url = f"{self.dashboard}/api/serve/applications/"
        self.client = client or httpx.Client(timeout=30.0)
        self.headers = auth_headers(ray_token)

    def close(self) -> None:
        self.client.close()

    def _checked(self, response: httpx.Response) -> httpx.Response:
        cause = explain_refusal(response.status_code, self.dashboard, bool(self.headers))
        if cause:
            raise DeployError(cause)
        return response

    def status(self) -> dict:
        response = self._checked(self.client.get(self.url, headers=self.headers))
        response.raise_for_status()
        return response.json()

    def configs(self) -> dict[str, dict]:
        """The declarative config of every application deployed from a config."""
        apps = self.status().get("applications") or {}
        return {
            n: e["deployed_app_config"] for n, e in apps.items() if e.get("deployed_app_config")
        }

    def put(self, apps: list[dict], http_host: str, http_port: int) -> None:
        body = {"http_options": {"host": http_host, "port": http_port}, "applications": apps}
        response = self._checked(self.client.put(self.url, json=body, headers=self.headers))
        if response.status_code >= 400:
            names = ", ".join(a["name"] for a in apps)
            raise DeployError(f"Serve rejected the config for {names}: {response.text[:500]}")

    def wait_running(self, wanted: dict[str, dict], timeout: float) -> None:
        """Until each named application is RUNNING with exactly the config we put."""
        deadline, pending = time.monotonic() + timeout, dict(wanted)
        while pending and time.monotonic() < deadline:
            apps = self.status().get("applications") or {}
            for name, config in list(pending.items()):
                entry = apps.get(name) or {}
                status = entry.get("status", "NOT_STARTED")
                if status == "DEPLOY_FAILED":
                    raise DeployError(f"{name} failed to start: {_last_line(entry.get('message'))}")
                if status == "RUNNING" and config_matches(entry.get("deployed_app_config"), config):
                    del pending[name]
            if pending:
                time.sleep(0.5)
        if pending:
            raise DeployError(f"{', '.join(pending)} not RUNNING after {timeout:.0f}s")


def _last_line(text: str | None) -> str:
    """Serve's failure message is a traceback; its last line is the exception, the cause."""
    lines = [line for line in (text or "no message").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def config_matches(deployed: dict | None, wanted: dict) -> bool:
    """Whether a deployed application config has the import path, args and ``user_config``s
    we put.

    Why not just RUNNING: right after a put, Serve still reports the previous config as
    RUNNING, and a rollout that stopped waiting then would smoke-test the old version (or,
    after an app builder moved, the old builder's application)."""
    if not deployed or deployed.get("args") != wanted["args"]:
        return False
    if "import_path" in wanted and deployed.get("import_path") != wanted["import_path"]:
        return False
    user_configs = {d["name"]: d.get("user_config") for d in deployed.get("deployments") or []}
    return all(
        user_configs.get(d["name"]) == d["user_config"] for d in wanted.get("deployments", [])
    )


def live_routing(configs: dict[str, dict], app_name: str) -> Routing | None:
    """The routing the router was last configured with, or None before the first deploy."""
    router = configs.get(app_name)
    if not router:
        return None
    for deployment in router.get("deployments") or []:
        if deployment.get("name") == ROUTING_TABLE and deployment.get("user_config"):
            return Routing.model_validate(deployment["user_config"])
    return None
