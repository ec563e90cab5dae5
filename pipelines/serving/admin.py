"""Serve's declarative REST API (on the Ray dashboard), as rollouts use it: read the live
config of every application, replace ours in it, wait until what we put is RUNNING.

Kept apart from ``pipelines.serving.rollout`` because it knows nothing of slots or routing policy:
it is the one place that talks HTTP to Serve's controller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from pipelines.ray_auth import auth_headers, explain_refusal
from pipelines.serving.client import DeployError
from pipelines.serving.routing import ROUTING_TABLE, Routing

_WRITES = threading.Lock()
"""Held from the re-read to the put of ``ServeAdmin.replace``: no two rollouts in one process
interleave their read and their write."""


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

    def replace(
        self, ours: dict[str, dict], owns: Callable[[str], bool], http_host: str, http_port: int
    ) -> None:
        """Make ``ours`` the whole set of applications ``owns`` names; every other application
        stays exactly as it is live at this moment.

        Why a re-read: Serve's REST API has no per-application write and no version to compare
        and swap; its PUT replaces every application. A config read earlier would put back
        another use case's applications as they were then, undoing its rollout if it finished
        in between. So the live configs are read right before the put, with nothing in between,
        and a process-wide lock keeps two rollouts in one process from interleaving the two.
        Rollouts in two processes (each Ray job is one) can still meet within that one round
        trip: Serve offers nothing to exclude it."""
        with _WRITES:
            self.put(merge_ours(self.configs(), ours, owns), http_host, http_port)

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


def merge_ours(
    live: dict[str, dict], ours: dict[str, dict], owns: Callable[[str], bool]
) -> list[dict]:
    """The whole config to put: every live application ``owns`` does not name, as it is, then
    ``ours``. One of ours that is live but not in ``ours`` is left out, so Serve removes it.
    ``ours`` naming an application that is not ours is a bug that would overwrite another use
    case's application: refused."""
    strangers = [n for n in ours if not owns(n)]
    if strangers:
        raise ValueError(f"not our applications, refusing to put them: {', '.join(strangers)}")
    return [c for n, c in live.items() if not owns(n)] + list(ours.values())


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
