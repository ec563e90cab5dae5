"""Which model versions get traffic: the one shape the router and the rollout code share.

Kept apart from the Serve app so the rollout code (and the Airflow side) can use it without
importing Ray Serve.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

VERSION_HEADER = "X-Conveyor-Model-Version"
REQUEST_ID_HEADER = "X-Request-Id"
"""Serve's request id, sent back on every answer (the client's own, or one Serve made up):
the key of the request's captured rows."""
"""Sent back with every prediction; sent by a client, it pins the request to that version."""
TOKEN_ENV = "CONVEYOR_SERVE_TOKEN"
"""The bearer token's variable, read by the router on the Serve nodes and by our clients."""


class Routing(BaseModel):
    """The ``user_config`` of the router application's ``RoutingTable`` deployment."""

    model_config = ConfigDict(extra="forbid")

    stable: str
    canary: str | None = None
    canary_fraction: float = Field(0.0, ge=0.0, le=1.0)
    shadow: str | None = None
    previous: str | None = None
    """The stable version before the last promotion or deploy: where ``rollback`` returns."""
    slots: dict[str, str] = Field(default_factory=dict)
    """Version -> the predictor application (slot) that has it loaded. Every loaded version is
    listed, routed or not, so a request pinned to a warm ``previous`` version is served."""

    incoming: str | None = None
    """The version a rollout is about to make stable: the router copies it ahead of the switch
    (``ray_jobs.predictor.StableMirror``), so the switch itself only swaps it in."""

    def versions(self) -> list[str]:
        """Versions that must be running: stable, canary, shadow (no duplicates)."""
        return list(dict.fromkeys(v for v in (self.stable, self.canary, self.shadow) if v))

    def unslotted(self) -> list[str]:
        """Routed or incoming versions that no slot holds (a router refuses such a routing)."""
        return [v for v in (*self.versions(), self.incoming) if v and v not in self.slots]


PREDICTOR_DEPLOYMENT = "Predictor"
"""The deployment in each predictor slot application (``ray_jobs.serve_app``), named in the
slot's Serve config and in the router's handles."""
ROUTING_TABLE = "RoutingTable"
"""The deployment in the router's application whose ``user_config`` is the ``Routing``
(``ray_jobs.serve_app.RoutingTable``), written by the rollout and followed by the router."""
SLOT_SEPARATOR = "--slot"


def slot_app_name(app_name: str, slot: int) -> str:
    """The Serve application of predictor slot ``slot`` of ``app_name``."""
    return f"{app_name}{SLOT_SEPARATOR}{slot}"
