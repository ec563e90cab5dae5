"""Where a use case's Serve application lives and how its versions are built: the one
object a rollout, the slot planner and the Serve REST API calls share (it has its own module
so the slot planner needs nothing of the rollout that uses it)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import ClassVar

from pipelines.ray_auth import find_ray_token
from pipelines.serving.routing import (
    PREDICTOR_DEPLOYMENT,
    ROUTING_TABLE,
    SLOT_SEPARATOR,
    Routing,
    slot_app_name,
)

PREDICTOR_IMPORT = "ray_jobs.serve_app:app_builder"
ROUTER_IMPORT = "ray_jobs.serve_app:router_builder"


@dataclass(frozen=True)
class ServeTarget:
    """Where our application lives and how its versions are built."""

    dashboard: str
    use_case: str
    """The use case served (its learner validates and scores the records)."""
    app_name: str
    route_prefix: str
    http_host: str
    http_port: int
    model_name: str
    tracking_uri: str
    require_auth: bool = False
    token: str = field(default="", repr=False)
    """The bearer token of the prediction routes (``require_auth``)."""
    ray_token: str | None = field(default=None, repr=False)
    """Ray's auth token for the dashboard's Serve REST API (``pipelines.ray_auth``)."""
    predictor: dict = field(default_factory=dict)
    """Extra ``PredictorArgs``: num_replicas, num_cpus, max_batch_size, batch_wait_timeout_s."""
    router: dict = field(default_factory=dict)
    """Extra ``RouterArgs``: num_replicas, mirror_stable, max_body_bytes, request_timeout_s,
    capture."""
    slots: int = 2
    """Predictor slots kept loaded. 2: the previous version stays warm (instant rollback) and
    a rollout loads into the idle slot without starting a process. 1 saves memory; each
    rollout then starts a new slot next to the live one."""
    timeout: float = 300.0
    SECRETS: ClassVar[tuple[str, ...]] = ("token", "ray_token")

    @property
    def endpoint(self) -> str:
        return f"http://{self.http_host}:{self.http_port}{self.route_prefix}"

    def slot_config(self, slot: int, version: str) -> dict:
        args = {
            "use_case": self.use_case,
            "model_name": self.model_name,
            "tracking_uri": self.tracking_uri,
            **self.predictor,
        }
        return {
            "name": slot_app_name(self.app_name, slot),
            "route_prefix": None,
            "import_path": PREDICTOR_IMPORT,
            "args": args,
            "deployments": [
                {"name": PREDICTOR_DEPLOYMENT, "user_config": {"model_version": str(version)}}
            ],
        }

    def slot_of(self, app_name: str) -> int | None:
        """The slot number of one of our predictor applications, else None."""
        prefix = f"{self.app_name}{SLOT_SEPARATOR}"
        number = app_name.removeprefix(prefix)
        return int(number) if app_name.startswith(prefix) and number.isdigit() else None

    def router_config(self, routing: Routing) -> dict:
        return {
            "name": self.app_name,
            "route_prefix": self.route_prefix,
            "import_path": ROUTER_IMPORT,
            "args": {
                "use_case": self.use_case,
                "app_name": self.app_name,
                "require_auth": self.require_auth,
                **self.router,
            },
            "deployments": [{"name": ROUTING_TABLE, "user_config": routing.model_dump()}],
        }

    def to_json(self) -> str:
        """The target as one JSON document for a rollout job (``ray_jobs.deploy --target``);
        its two secrets stay out of it: the job reads them on its node."""
        fields = {k: v for k, v in asdict(self).items() if k not in self.SECRETS}
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, **secrets) -> ServeTarget:
        """A target from ``to_json``; ``secrets`` are ``token`` and ``ray_token``. A missing or
        unknown field is a one-line error naming it."""
        data = json.loads(text)
        names = {f.name for f in dataclass_fields(cls)} - set(cls.SECRETS)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"serve target: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**data, **secrets)
        except TypeError as exc:
            raise ValueError(f"serve target: {exc}") from None

    def owns(self, app_name: str) -> bool:
        return app_name == self.app_name or app_name.startswith(f"{self.app_name}--")


def capture_args(settings) -> dict:
    """The router's capture arguments of these settings (none when ``capture_rate`` is 0)."""
    if settings.capture_rate <= 0:
        return {}
    return {"capture": {"root": settings.lake, "rate": settings.capture_rate}}


def target_from_settings(settings, **overrides) -> ServeTarget:
    """The deployment target of a use case's ``ConveyorSettings`` (``for_use_case``), or of
    any settings with the names given in ``overrides`` (the CLI and tests use it)."""

    def named(key: str, field: str) -> str:
        return overrides[key] if key in overrides else settings.named(field)

    values = {
        "dashboard": settings.ray_jobs_address,
        "use_case": named("use_case", "use_case"),
        "app_name": named("app_name", "serve_app_name"),
        "route_prefix": named("route_prefix", "serve_route_prefix"),
        "http_host": settings.host,
        "http_port": settings.serve_http_port,
        "model_name": named("model_name", "model_name"),
        "tracking_uri": settings.tracking_uri,
        "require_auth": settings.serve_require_auth,
        "token": settings.serve_token.get_secret_value() if settings.serve_require_auth else "",
        "slots": settings.serve_slots,
        "ray_token": find_ray_token(),
        "router": capture_args(settings),
    }
    return ServeTarget(**{**values, **overrides})
