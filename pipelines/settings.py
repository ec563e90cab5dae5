"""Deployment settings: where the lake lives and how to reach Ray, MLflow and Airflow.

One object, read from ``CONVEYOR_*`` environment variables, so the same code runs on a laptop
(the embedded stack under ``.local/``), in docker-compose and against a real Ray cluster.
Per-run choices (dates, epochs, ...) are not settings: they are DAG Params or CLI options.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConveyorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", frozen=True)

    home: Path = Path(".local")
    """Root of everything the embedded stack writes (lake, MLflow, Airflow home, PIDs)."""
    lake_root: str | None = None
    """Lake root, a local path or an fsspec URL; defaults to ``<home>/lake``."""
    landing_root: str | None = None
    """Where gateways drop source files (a folder per use case); defaults to ``<home>/landing``."""
    daily_catchup: bool = False
    """Let the scheduler create daily ingest runs for every missed day since their start date
    (off: use a backfill for a chosen range)."""
    host: str = "127.0.0.1"

    ray_gcs_port: int = 6390
    """Not Ray's default 6379, which Redis holds on our machines."""
    ray_dashboard_port: int = 8265
    ray_client_port: int = 10001
    ray_dashboard_agent_port: int = 52365
    """Ray's agent port is fixed by default; give each local cluster its own."""
    ray_num_cpus: int = 4
    """Logical CPUs the local head advertises (training workers + a Serve replica at once)."""
    ray_address: str | None = None
    """Ray Jobs / dashboard HTTP address; defaults to ``http://<host>:<ray_dashboard_port>``."""
    serve_http_port: int = 8000
    serve_ingress: Literal["haproxy", "proxy"] = "haproxy"
    """How HTTP reaches the router: ``haproxy`` (Ray Serve's HAProxy ingress, which forwards
    straight to the router replica's own HTTP server, with Serve's throughput-optimized mode:
    one Python hop fewer per request; bench.serve_latency compares them) or ``proxy`` (Serve's
    Python HTTP proxy actor, Ray's default)."""
    serve_haproxy_stats_port: int = 8404
    serve_haproxy_metrics_port: int = 9101
    serve_fallback_proxy_http_port: int = 8500
    """With ``haproxy``, Serve's Python proxy still runs as HAProxy's backup on these two."""
    serve_fallback_proxy_grpc_port: int = 9500
    serve_replica_http_port_min: int = 30000
    """With ``haproxy``, each ingress replica listens on a port from this one up (1000 of
    them); the gRPC ones start 10000 higher."""
    serve_url: str | None = None
    """How clients reach Serve's HTTP proxy; defaults to ``http://<host>:<serve_http_port>``
    (set it when ``host`` is a bind address such as 0.0.0.0, as in docker-compose)."""

    mlflow_port: int = 5001
    mlflow_tracking_uri: str | None = None
    """Defaults to the embedded MLflow server ``http://<host>:<mlflow_port>``."""

    airflow_port: int = 8080
    airflow_url: str | None = None
    airflow_worker_log_port: int = 8793
    """Airflow's worker log server (it binds every interface and checks a JWT signed with
    the api-server's secret on each request)."""
    airflow_trigger_log_port: int = 8794
    """The triggerer's log server, the same way."""
    airflow_executor: Literal["LocalExecutor", "CeleryExecutor"] = "LocalExecutor"
    """Airflow on a server (``conveyor.stack.airflow_server_env``): the LocalExecutor runs
    tasks on the scheduler's machine; the CeleryExecutor on ``airflow celery worker``
    processes on any machine, through ``celery_broker_url``, with results in the metadata
    DB. The embedded demo (``airflow standalone``) always runs the LocalExecutor."""
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    celery_queue: str = "default"
    """The Celery queue Airflow sends tasks to and the workers take them from (a deployment
    sharing its broker with another one gives each its own)."""

    lock_database_url: str | None = None
    """A PostgreSQL URL (``postgresql://`` or Airflow's ``postgresql+psycopg://`` form) for the
    locks that must hold across machines (one promotion at a time per model): session
    advisory locks on that database. Point it at Airflow's metadata DB when Airflow workers
    run on several hosts (docker-compose and the real stack do). Unset: file locks under
    ``<home>/locks``, which hold on one machine or a shared POSIX mount."""

    use_case: str | None = None
    """The use case these settings are for (``for_use_case`` sets it)."""
    model_name: str | None = None
    """The MLflow model; default: the use case's (``for_use_case``). Set it, and the two
    below, only for a deployment that runs one use case under names of its own, next to
    another deployment on the same MLflow and Ray cluster (the test suites do)."""
    serve_app_name: str | None = None
    """The Serve application; default: the use case's."""
    serve_route_prefix: str | None = None
    """The Serve route; default: the use case's (``/<name with dashes>``)."""
    serve_require_auth: bool = False
    """Bearer auth on the prediction routes (on in docker-compose, off in the embedded demo)."""
    serve_token: SecretStr = SecretStr("")
    """The bearer token; the Serve nodes read the same ``CONVEYOR_SERVE_TOKEN`` variable."""
    serve_canary_fraction: float = 0.1
    """Share of traffic a canary gets unless a run or the CLI says otherwise."""
    serve_slots: int = Field(2, ge=1)
    """Predictor slots kept loaded (``pipelines.serving.rollout``). 2 keeps the previous
    version warm for an instant rollback and lets a rollout load into the idle slot without
    starting a process; 1 halves the models in memory, and each rollout then starts a new
    slot."""

    capture_rate: float = Field(1.0, ge=0.0, le=1.0)
    """Share of requests each endpoint keeps in the lake (``pipelines.monitoring.capture``:
    inputs, answer, version, request id, under ``<lake>/_served/<use case>``), written off the
    request path; 0 turns capture off. The Serve nodes must reach the lake root."""
    capture_poll_s: float = Field(60.0, gt=0.0)
    """How often the triggerer lists the captured hours (``CapturedHoursTrigger``)."""
    capture_settle_s: float = Field(60.0, ge=0.0)
    """How long after an hour ends it counts as complete: every replica's writer flushes
    within seconds, so its last rows are in before the monitoring run reads the hour."""

    def for_use_case(self, use_case) -> ConveyorSettings:
        """These settings with a use case's model, application and route names wherever none
        is set (``use_case`` is a ``pipelines.usecase.UseCase``)."""
        return self.model_copy(
            update={
                "use_case": use_case.name,
                "model_name": self.model_name or use_case.model_name,
                "serve_app_name": self.serve_app_name or use_case.serve_app_name,
                "serve_route_prefix": self.serve_route_prefix or use_case.serve_route_prefix,
            }
        )

    def named(self, field: str) -> str:
        """A name setting (``use_case``, ``model_name``, ``serve_app_name``,
        ``serve_route_prefix``), which must be set: a one-line error otherwise."""
        value = getattr(self, field)
        if not value:
            raise ValueError(
                f"settings.{field} is not set: take the settings of a use case "
                "(ConveyorSettings.for_use_case)"
            )
        return value

    @cached_property
    def home_dir(self) -> Path:
        return self.home.resolve()

    @property
    def lake(self) -> str:
        return self.lake_root or str(self.home_dir / "lake")

    @property
    def ray_jobs_address(self) -> str:
        return self.ray_address or f"http://{self.host}:{self.ray_dashboard_port}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://{self.host}:{self.mlflow_port}"

    @property
    def airflow_base_url(self) -> str:
        return self.airflow_url or f"http://{self.host}:{self.airflow_port}"

    @property
    def serve_base_url(self) -> str:
        return self.serve_url or f"http://{self.host}:{self.serve_http_port}"

    @property
    def serve_endpoint(self) -> str:
        return f"{self.serve_base_url}{self.named('serve_route_prefix')}"

    def rollout_args(self) -> str:
        """Where to deploy, as ``ray_jobs.deploy``'s ``--target`` (one JSON document: the
        ``ServeTarget`` of these settings, without secrets); the DAGs template it in."""
        import shlex

        from pipelines.serving.target import target_from_settings

        return f"--target {shlex.quote(target_from_settings(self).to_json())}"

    def lock(self, name: str):
        """The ``pipelines.locks.Lock`` called ``name``, where these settings keep locks."""
        from pipelines.locks import Lock

        return Lock(name, str(self.home_dir / "locks"), self.lock_database_url)

    @property
    def runs_dir(self) -> Path:
        """Shared storage for training runs: checkpoints and each job's result JSON."""
        return self.home_dir / "runs"

    @property
    def landing(self) -> str:
        return self.landing_root or str(self.home_dir / "landing")

    @property
    def validation_dir(self) -> Path:
        return self.home_dir / "validation"

    @property
    def reports_dir(self) -> Path:
        """One page per pipeline run (``pipelines.report``), served at /conveyor/reports."""
        return self.home_dir / "reports"


def get_settings() -> ConveyorSettings:
    """Read settings fresh from the environment (cheap; no caching so tests can patch env)."""
    return ConveyorSettings()
