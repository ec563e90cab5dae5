"""The embedded local stack: a Ray head, an MLflow server and Airflow standalone.

``up`` starts what is not running yet and records each service's PID in ``<home>/stack.json``;
``down`` stops exactly those. Tests use the same ``start_*`` functions with their own ports.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

import httpx

from conveyor.processes import (
    RAY_GRACE_S,
    ServiceRecord,
    StackError,
    require_free_ports,
    spawn,
    stop,
    wait_until,
)
from pipelines.settings import ConveyorSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_USER = "admin"


def _bin(name: str) -> str:
    """An executable of this virtualenv (ray, mlflow, airflow), by absolute path."""
    return str(Path(sys.executable).parent / name)


def service_env(settings: ConveyorSettings) -> dict[str, str]:
    """Environment for every service: the venv first on PATH, settings passed through."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    for key, value in settings.model_dump(exclude_none=True).items():
        env.setdefault(f"CONVEYOR_{key.upper()}", str(value))
    env["CONVEYOR_HOME"] = str(settings.home_dir)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _ok(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


def serve_ingress_env(settings: ConveyorSettings, temp_dir: Path) -> dict[str, str]:
    """Ray Serve's environment for ``settings.serve_ingress``.

    ``haproxy``: HTTP goes from HAProxy (C) straight to the router replica's own HTTP server,
    skipping Serve's Python proxy actor, and Serve's throughput-optimized mode runs user code
    on the replica's event loop and calls between deployments over gRPC. HAProxy's files and
    ports default to fixed ``/tmp`` paths and fixed ports; they go under this cluster's
    ``temp_dir`` and the configured ports, so several local clusters do not collide."""
    if settings.serve_ingress != "haproxy":
        return {}
    files = temp_dir / "haproxy"
    files.mkdir(parents=True, exist_ok=True)
    http_min = settings.serve_replica_http_port_min
    return {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(files / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(files / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(files),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(files / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(files / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(settings.serve_haproxy_stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.serve_haproxy_metrics_port),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(settings.serve_fallback_proxy_http_port),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(settings.serve_fallback_proxy_grpc_port),
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(http_min),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(http_min + 999),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(http_min + 10000),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(http_min + 10999),
    }


def start_ray(settings: ConveyorSettings, timeout: float = 120.0) -> ServiceRecord:
    """``ray start --head --block`` in its own session; every port given explicitly."""
    temp_dir = tempfile.mkdtemp(prefix="cvray-")  # short: Ray's socket paths are length-limited
    log_path = settings.home_dir / "logs" / "ray.log"
    argv = [
        _bin("ray"),
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        f"--node-ip-address={settings.host}",
        f"--port={settings.ray_gcs_port}",
        f"--dashboard-host={settings.host}",
        f"--dashboard-port={settings.ray_dashboard_port}",
        f"--dashboard-agent-listen-port={settings.ray_dashboard_agent_port}",
        f"--ray-client-server-port={settings.ray_client_port}",
        f"--num-cpus={settings.ray_num_cpus}",
        f"--temp-dir={temp_dir}",
    ]
    url = settings.ray_jobs_address
    env = {**service_env(settings), **serve_ingress_env(settings, Path(temp_dir))}
    proc, record = spawn("ray", argv, log_path, env, url, cwd=PROJECT_ROOT, grace_s=RAY_GRACE_S)
    wait_until(lambda: _ok(f"{url}/api/version"), "Ray head", timeout, proc, log_path)
    return record


def start_mlflow(settings: ConveyorSettings, timeout: float = 120.0) -> ServiceRecord:
    root = settings.home_dir / "mlflow"
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    log_path = settings.home_dir / "logs" / "mlflow.log"
    argv = [
        _bin("mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        settings.host,
        "--port",
        str(settings.mlflow_port),
        "--workers",
        "1",
    ]
    url = settings.tracking_uri
    proc, record = spawn("mlflow", argv, log_path, service_env(settings), url, cwd=PROJECT_ROOT)
    wait_until(lambda: _ok(f"{url}/health"), "MLflow server", timeout, proc, log_path)
    return record


def airflow_env(settings: ConveyorSettings) -> dict[str, str]:
    """Airflow configuration for the embedded demo: SQLite, project dags/ and plugins/."""
    home = settings.home_dir / "airflow"
    env = service_env(settings)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",
            "AIRFLOW__API__HOST": settings.host,
            "AIRFLOW__API__PORT": str(settings.airflow_port),
            "AIRFLOW__API__BASE_URL": settings.airflow_base_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        }
    )
    return env


def airflow_password(settings: ConveyorSettings) -> str:
    path = settings.home_dir / "airflow" / "simple_auth_manager_passwords.json.generated"
    return json.loads(path.read_text())[AIRFLOW_USER]


def start_airflow(settings: ConveyorSettings, timeout: float = 300.0) -> ServiceRecord:
    """``airflow standalone``: api-server, scheduler, dag-processor and triggerer on SQLite."""
    home = settings.home_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(settings)
    # A random JWT secret per install, never a committed one.
    secret_file = home / ".jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = secret_file.read_text().strip()
    log_path = settings.home_dir / "logs" / "airflow.log"
    url = settings.airflow_base_url
    proc, record = spawn(
        "airflow", [_bin("airflow"), "standalone"], log_path, env, url, cwd=PROJECT_ROOT
    )
    wait_until(
        lambda: _ok(f"{url}/api/v2/monitor/health"), "Airflow api-server", timeout, proc, log_path
    )
    return record


AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def airflow_server_env(
    settings: ConveyorSettings, sql_alchemy_conn: str, password: str, jwt_secret: str
) -> dict[str, str]:
    """Airflow as on a server: a PostgreSQL metadata DB, LocalExecutor, each component its
    own process (the docker-compose services run the same commands with the same settings)."""
    home = settings.home_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({AIRFLOW_USER: password}))
    passwords.chmod(0o600)
    env = airflow_env(settings)
    env.update(
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
            # psycopg 3 serves both; Airflow would otherwise want asyncpg for the async engine.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": sql_alchemy_conn.replace(
                "postgresql+psycopg://", "postgresql+psycopg_async://"
            ),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_base_url}/execution/",
        }
    )
    return env


def migrate_airflow_db(settings: ConveyorSettings, env: dict[str, str]) -> None:
    """``airflow db migrate``: create or upgrade the metadata schema (idempotent)."""
    import subprocess

    log_path = settings.home_dir / "logs" / "airflow-db-migrate.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        done = subprocess.run(
            [_bin("airflow"), "db", "migrate"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise StackError(f"airflow db migrate failed (exit {done.returncode}); see {log_path}")


def start_airflow_component(
    settings: ConveyorSettings, component: str, env: dict[str, str], timeout: float = 300.0
) -> ServiceRecord:
    """One Airflow component (``airflow <component>``) as its own process. The api-server is
    ready when it answers health; the others when their process is up (the test waits on the
    behaviour it needs)."""
    if component not in AIRFLOW_COMPONENTS:
        raise StackError(f"unknown Airflow component {component!r}")
    argv = [_bin("airflow"), component]
    if component == "api-server":
        argv += ["--host", settings.host, "--port", str(settings.airflow_port)]
    log_path = settings.home_dir / "logs" / f"airflow-{component}.log"
    url = settings.airflow_base_url
    proc, record = spawn(f"airflow-{component}", argv, log_path, env, url, cwd=PROJECT_ROOT)
    if component == "api-server":
        health = f"{url}/api/v2/monitor/health"
        wait_until(lambda: _ok(health), "Airflow api-server", timeout, proc, log_path)
    return record


class Stack:
    """What ``conveyor up`` started, persisted so ``down`` stops exactly that."""

    def __init__(self, settings: ConveyorSettings):
        self.settings = settings
        self.state_file = settings.home_dir / "stack.json"

    def records(self) -> list[ServiceRecord]:
        if not self.state_file.exists():
            return []
        return [ServiceRecord(**r) for r in json.loads(self.state_file.read_text())]

    def _save(self, records: list[ServiceRecord]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps([r.as_dict() for r in records], indent=2))

    def status(self) -> dict[str, dict]:
        return {r.name: {**r.as_dict(), "running": r.alive()} for r in self.records()}

    def up(self, airflow: bool = True) -> list[ServiceRecord]:
        """Start each service that is not already running (so ``up`` twice reuses the stack)."""
        s = self.settings
        running = [r for r in self.records() if r.alive()]
        names = {r.name for r in running}
        starters = {"ray": start_ray, "mlflow": start_mlflow}
        if airflow:
            starters["airflow"] = start_airflow
        ports = {
            "ray": {
                "ray_gcs": s.ray_gcs_port,
                "ray_dashboard": s.ray_dashboard_port,
                "serve_http": s.serve_http_port,
                **(
                    {
                        "serve_haproxy_stats": s.serve_haproxy_stats_port,
                        "serve_haproxy_metrics": s.serve_haproxy_metrics_port,
                        "serve_fallback_proxy_http": s.serve_fallback_proxy_http_port,
                        "serve_fallback_proxy_grpc": s.serve_fallback_proxy_grpc_port,
                    }
                    if s.serve_ingress == "haproxy"
                    else {}
                ),
            },
            "mlflow": {"mlflow": s.mlflow_port},
            "airflow": {"airflow": s.airflow_port},
        }
        missing = [name for name in starters if name not in names]
        require_free_ports(s.host, {k: v for n in missing for k, v in ports[n].items()})
        records = list(running)
        try:
            for name in missing:
                records.append(starters[name](s))
                self._save(records)
        except BaseException:
            self._save(records)
            raise
        return records

    def down(self) -> list[str]:
        stopped = [r.name for r in reversed(self.records()) if stop(r)]
        self.state_file.unlink(missing_ok=True)
        return stopped


__all__ = ["Stack", "StackError", "start_airflow", "start_mlflow", "start_ray"]
