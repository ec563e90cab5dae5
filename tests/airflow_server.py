"""Airflow as on a server, for the stack tests: a fresh PostgreSQL metadata DB, each component
its own process (``conveyor.stack``), next to the session's Ray head and MLflow, under names of
its own (model, Serve application, route) so that modules do not share a model's history.
Everything it started is stopped by PID afterwards, also what a SIGKILLed component left."""

import contextlib
import json
import os
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.airflow_api import AirflowAPI
from conveyor.processes import ServiceRecord, free_port, stop_all, wait_until
from conveyor.stack import (
    AIRFLOW_USER,
    airflow_server_env,
    migrate_airflow_db,
    start_airflow_component,
    start_celery_worker,
)
from pipelines.ray_auth import find_ray_token
from pipelines.ray_jobs_client import RayConnectionConfig, RayJobsClient
from pipelines.serving.admin import ServeAdmin
from pipelines.serving.target import target_from_settings
from pipelines.settings import ConveyorSettings
from tests.services import scratch_database


@dataclass
class AirflowServer:
    settings: ConveyorSettings
    env: dict[str, str]
    password: str
    records: dict[str, ServiceRecord]
    killed: list[int] = field(default_factory=list)
    """Session ids of components a test SIGKILLed: whatever they left is killed at the end."""

    def api(self) -> AirflowAPI:
        return AirflowAPI(self.settings.airflow_base_url, AIRFLOW_USER, self.password)

    def ray_jobs(self) -> RayJobsClient:
        config = RayConnectionConfig(self.settings.ray_jobs_address, token=find_ray_token())
        return RayJobsClient(config)

    def restart(self, component: str) -> None:
        self.records[component] = start_airflow_component(self.settings, component, self.env)

    def kill(self, name: str) -> None:
        """SIGKILL a component and every process of its session (its task processes too), as
        when its machine dies."""
        sid = self.records[name].pid  # each started in its own session
        for pid in session_pids(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed.append(sid)


def session_pids(sid: int) -> list[int]:
    import psutil

    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(process.pid) == sid:
                found.append(process.pid)
    return found


@contextlib.contextmanager
def airflow_server(
    local_stack: ConveyorSettings,
    home: Path,
    name: str,
    extra_env: dict[str, str] | None = None,
    celery_workers: int = 0,
    ray_headers: dict[str, str] | None = None,
    **settings,
) -> Iterator[AirflowServer]:
    """The four Airflow components (and ``celery_workers`` Celery workers, named w1, w2, ...)
    on a fresh metadata DB; ``name`` names its model, Serve application and route;
    ``ray_headers`` go in the Ray Connection's extra (sent on every Ray call)."""
    settings = ConveyorSettings(
        home=home,
        airflow_port=free_port(),
        airflow_worker_log_port=free_port(),
        airflow_trigger_log_port=free_port(),
        use_case="predictive_maintenance",
        model_name=name.replace("-", "_"),
        serve_app_name=name,
        serve_route_prefix=f"/{name}",
        **settings,
    )
    password = secrets.token_urlsafe(16)
    with scratch_database(name.replace("-", "_")) as metadata_db:
        env = airflow_server_env(settings, metadata_db, password, secrets.token_urlsafe(32))
        # Airflow reaches the token-authenticated Ray head through the Connection's password
        # only: its HOME holds no ~/.ray/auth_token.
        (home / "airflow-user-home").mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home / "airflow-user-home")
        connection = {
            "conn_type": "ray",
            "host": local_stack.host,
            "port": local_stack.ray_dashboard_port,
            "password": find_ray_token(),
        }
        if ray_headers:
            connection["extra"] = {"headers": ray_headers}
        env["AIRFLOW_CONN_CONVEYOR_RAY"] = json.dumps(connection)
        env.update(extra_env or {})
        migrate_airflow_db(settings, env)
        server = AirflowServer(settings, env, password, {})
        try:
            for component in ("api-server", "dag-processor", "triggerer", "scheduler"):
                server.records[component] = start_airflow_component(settings, component, env)
            for number in range(1, celery_workers + 1):
                server.records[f"w{number}"] = start_celery_worker(
                    settings, f"w{number}", env, log_server_port=free_port()
                )
            yield server
        finally:
            stop_all(server.records.values())
            for sid in server.killed:
                for pid in session_pids(sid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            admin = ServeAdmin(settings.ray_jobs_address, ray_token=find_ray_token())
            target = target_from_settings(settings)
            admin.put(
                [c for n, c in admin.configs().items() if not target.owns(n)],
                settings.host,
                settings.serve_http_port,
            )


def wait_parsed(api: AirflowAPI, dag_id: str) -> None:
    wait_until(lambda: api.dag(dag_id)["is_paused"] is False, f"{dag_id} parsed, unpaused", 180)
