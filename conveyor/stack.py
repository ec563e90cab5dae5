"""The embedded local stack: a Ray head, an MLflow server and Airflow standalone.

``up`` starts what is not running yet and records each service's PID in ``<home>/stack.json``;
``down`` stops exactly those. Tests use the same ``start_*`` functions with their own ports.
"""

from __future__ import annotations

import functools
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
    start_service,
    stop,
)
from pipelines.ray_auth import (
    AUTH_MODE_ENV,
    RayAuthError,
    auth_headers,
    default_token_path,
    explain_refusal,
    find_ray_token,
)
from pipelines.settings import ConveyorSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_USER = "admin"
NOTES_USER = "conveyor"
"""The Airflow user (role User: may edit DAG runs) the report task signs in as to write the
run's outcome as its note, through the ``conveyor_airflow_api`` Connection."""
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


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


def ray_auth_env(env: dict[str, str]) -> dict[str, str]:
    """Token authentication for the local Ray head, as Ray does for a local ``ray.init()``:
    on unless ``RAY_AUTH_MODE`` says otherwise, with the token Ray would find
    (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``), and a new one
    written to ``~/.ray/auth_token`` (mode 0600) when there is none. Why on: Ray resolves a
    loopback node address to the machine's own and binds its GCS, raylet, worker and client
    server ports there, and only the token keeps the network off them.

    ``RAY_AUTH_MODE=disabled`` opts out: the head then runs without authentication."""
    mode = env.get(AUTH_MODE_ENV, "").strip().lower()
    if mode == "disabled":
        return {}
    try:
        if find_ray_token(env) is None:
            path = default_token_path(env)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    except (RayAuthError, OSError) as exc:
        raise StackError(f"Ray auth token: {exc}") from None
    return {AUTH_MODE_ENV: "token"}


def ray_dashboard_ready(address: str, token: str | None):
    """A readiness check for a Ray head: its dashboard answers ``/api/version`` with the
    token. A 401/403 raises ``StackError`` at once, naming the cause (waiting cannot fix a
    refused credential)."""

    def ready() -> bool:
        status = httpx.get(f"{address}/api/version", headers=auth_headers(token), timeout=2.0)
        cause = explain_refusal(status.status_code, address, sent_token=bool(token))
        if cause:
            raise StackError(cause)
        return status.status_code == 200

    return ready


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


def start_ray(settings: ConveyorSettings, timeout: float = 120.0, started=None) -> ServiceRecord:
    """``ray start --head --block`` in its own session; every port given explicitly, token
    authentication as ``ray_auth_env`` decides. ``started`` gets the record before the
    readiness wait (``start_service``); a failed start stops the head it started."""
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
    env.update(ray_auth_env(env))
    try:
        token = find_ray_token(env)
    except RayAuthError as exc:
        raise StackError(str(exc)) from None
    return start_service(
        "ray",
        argv,
        log_path,
        env,
        url,
        ray_dashboard_ready(url, token),
        timeout,
        what="Ray head",
        cwd=PROJECT_ROOT,
        grace_s=RAY_GRACE_S,
        started=started,
    )


def start_mlflow(settings: ConveyorSettings, timeout: float = 120.0, started=None) -> ServiceRecord:
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
    ready = functools.partial(_ok, f"{url}/health")
    env = service_env(settings)
    return start_service(
        "mlflow",
        argv,
        log_path,
        env,
        url,
        ready,
        timeout,
        what="MLflow server",
        cwd=PROJECT_ROOT,
        started=started,
    )


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
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin,{NOTES_USER}:user",
            "AIRFLOW__API__HOST": settings.host,
            "AIRFLOW__API__PORT": str(settings.airflow_port),
            "AIRFLOW__API__BASE_URL": settings.airflow_base_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(settings.airflow_worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(settings.airflow_trigger_log_port),
        }
    )
    return env


def airflow_password(settings: ConveyorSettings) -> str:
    path = settings.home_dir / "airflow" / PASSWORDS_FILE
    return json.loads(path.read_text())[AIRFLOW_USER]


def airflow_passwords(
    path: Path, admin: str | None = None, notes: str | None = None
) -> dict[str, str]:
    """The Airflow users' passwords file (``{user: password}``, mode 0600): the admin's and
    the notes user's (each as given, else kept or generated), written before Airflow starts
    so the report task's Connection can carry the latter."""
    passwords = json.loads(path.read_text()) if path.exists() else {}
    for user, given in ((AIRFLOW_USER, admin), (NOTES_USER, notes)):
        if given is not None:
            passwords[user] = given
    for user in (AIRFLOW_USER, NOTES_USER):
        passwords.setdefault(user, secrets.token_urlsafe(16))
    path.write_text(json.dumps(passwords))
    path.chmod(0o600)
    return passwords


def notes_connection(settings: ConveyorSettings, password: str) -> dict[str, str]:
    """``AIRFLOW_CONN_CONVEYOR_AIRFLOW_API``: Airflow's own REST API as the notes user."""
    conn = {
        "conn_type": "http",
        "host": settings.host,
        "port": settings.airflow_port,
        "login": NOTES_USER,
        "password": password,
    }
    return {"AIRFLOW_CONN_CONVEYOR_AIRFLOW_API": json.dumps(conn)}


def start_airflow(
    settings: ConveyorSettings, timeout: float = 300.0, started=None
) -> ServiceRecord:
    """``airflow standalone``: api-server, scheduler, dag-processor and triggerer on SQLite."""
    home = settings.home_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(settings)
    # A random JWT secret per install, never a committed one.
    secret_file = home / ".jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = secret_file.read_text().strip()
    passwords_file = home / PASSWORDS_FILE
    passwords = airflow_passwords(passwords_file)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords_file)
    env.update(notes_connection(settings, passwords[NOTES_USER]))
    log_path = settings.home_dir / "logs" / "airflow.log"
    url = settings.airflow_base_url
    ready = functools.partial(_ok, f"{url}/api/v2/monitor/health")
    argv = [_bin("airflow"), "standalone"]
    return start_service(
        "airflow",
        argv,
        log_path,
        env,
        url,
        ready,
        timeout,
        what="Airflow api-server",
        cwd=PROJECT_ROOT,
        started=started,
    )


AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def airflow_server_env(
    settings: ConveyorSettings, sql_alchemy_conn: str, password: str, jwt_secret: str
) -> dict[str, str]:
    """Airflow as on a server: a PostgreSQL metadata DB, each component its own process (the
    docker-compose services run the same commands with the same settings), tasks run by
    ``settings.airflow_executor``: LocalExecutor, or CeleryExecutor with the broker and queue
    of the settings and task results in the metadata DB (start the workers with
    ``start_celery_worker``)."""
    home = settings.home_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    notes_password = airflow_passwords(passwords, admin=password)[NOTES_USER]
    env = {**airflow_env(settings), **notes_connection(settings, notes_password)}
    env.update(
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
            # psycopg 3 serves both; Airflow would otherwise want asyncpg for the async engine.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": sql_alchemy_conn.replace(
                "postgresql+psycopg://", "postgresql+psycopg_async://"
            ),
            # One promotion at a time per model, across every worker host: advisory locks
            # on the metadata DB (pipelines.locks).
            "CONVEYOR_LOCK_DATABASE_URL": sql_alchemy_conn,
            "AIRFLOW__CORE__EXECUTOR": settings.airflow_executor,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_base_url}/execution/",
        }
    )
    if settings.airflow_executor == "CeleryExecutor":
        env.update(
            {
                "AIRFLOW__CELERY__BROKER_URL": settings.celery_broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{sql_alchemy_conn}",
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": settings.celery_queue,
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


def start_celery_worker(
    settings: ConveyorSettings,
    name: str,
    env: dict[str, str],
    log_server_port: int,
    concurrency: int = 2,
    timeout: float = 300.0,
) -> ServiceRecord:
    """``airflow celery worker`` as its own process, named ``name`` (several may run on one
    machine, each with its own log server port), taking tasks from ``settings.celery_queue``;
    ready when Celery has connected it to the broker and it waits for tasks."""
    log_path = settings.home_dir / "logs" / f"airflow-celery-{name}.log"
    argv = [
        _bin("airflow"),
        "celery",
        "worker",
        "--celery-hostname",
        f"{name}@%h",
        "--queues",
        settings.celery_queue,
        "--concurrency",
        str(concurrency),
        "--pid",
        str(settings.home_dir / f"airflow-celery-{name}.pid"),
    ]
    worker_env = {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_server_port)}

    def ready() -> bool:
        return log_path.exists() and " ready." in log_path.read_text(errors="replace")

    return start_service(
        f"airflow-celery-{name}",
        argv,
        log_path,
        worker_env,
        settings.airflow_base_url,
        ready,
        timeout,
        what=f"Airflow Celery worker {name}",
        cwd=PROJECT_ROOT,
    )


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
    if component == "api-server":
        ready = functools.partial(_ok, f"{url}/api/v2/monitor/health")
    else:

        def ready() -> bool:  # up as soon as spawned (see the docstring)
            return True

    return start_service(
        f"airflow-{component}",
        argv,
        log_path,
        env,
        url,
        ready,
        timeout,
        what=f"Airflow {component}",
        cwd=PROJECT_ROOT,
    )


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
            "airflow": {
                "airflow": s.airflow_port,
                "airflow_worker_log": s.airflow_worker_log_port,
                "airflow_trigger_log": s.airflow_trigger_log_port,
            },
        }
        missing = [name for name in starters if name not in names]
        require_free_ports(s.host, {k: v for n in missing for k, v in ports[n].items()})
        records = list(running)

        def started(record: ServiceRecord) -> None:
            records.append(record)
            self._save(records)

        try:
            for name in missing:
                starters[name](s, started=started)
        finally:
            # A failed start has stopped what it spawned: keep only what still runs.
            self._save([r for r in records if r.alive()])
        return records

    def down(self) -> list[str]:
        stopped = [r.name for r in reversed(self.records()) if stop(r)]
        self.state_file.unlink(missing_ok=True)
        return stopped


__all__ = ["Stack", "StackError", "start_airflow", "start_mlflow", "start_ray"]
