"""Ray's token authentication, from the client's side: find the token the way Ray does and
turn it into the HTTP header the Ray dashboard (Jobs API, Serve REST API) expects.

Ray (2.52+) authenticates every control-plane request with one static token when the cluster
runs with ``RAY_AUTH_MODE=token``; since 2.59 a local ``ray start`` turns that mode on by
itself whenever a token file exists (``~/.ray/auth_token``, written by any earlier local
``ray.init()``). Ray's own clients send the token only when *their* process is in token mode,
so a client whose ``RAY_AUTH_MODE`` is unset gets HTTP 401 from such a cluster. Conveyor's
clients therefore send the token whenever one is found, unless ``RAY_AUTH_MODE=disabled``
says to opt out; a cluster without token auth ignores the header.

Where the token comes from, highest precedence first (as in Ray):
``RAY_AUTH_TOKEN``; the file named by ``RAY_AUTH_TOKEN_PATH`` (unreadable or empty is an
error, as in Ray, never a silent fallback); ``~/.ray/auth_token``. Airflow adds one source in
front: the ``ray`` Connection's password (``conveyor_provider.hooks.ray_jobs``).

The token is a secret: nothing here logs it, and callers keep it out of reprs and XComs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path(".ray") / "auth_token"


class RayAuthError(RuntimeError):
    """The token could not be read, or the cluster refused the one we sent."""


def default_token_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$HOME/.ray/auth_token`` (``Path.home()`` reads ``HOME`` first, as Ray does)."""
    env = os.environ if environ is None else environ
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / DEFAULT_TOKEN_FILE


def find_ray_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The Ray auth token this process should send, or None (no token, or auth opted out)."""
    env = os.environ if environ is None else environ
    if env.get(AUTH_MODE_ENV, "").strip().lower() == "disabled":
        return None
    if token := env.get(TOKEN_ENV, "").strip():
        return token
    if path := env.get(TOKEN_PATH_ENV, "").strip():
        return _read_token(Path(path), TOKEN_PATH_ENV)
    default = default_token_path(env)
    return _read_token(default, str(default)) if default.is_file() else None


def _read_token(path: Path, named_by: str) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise RayAuthError(
            f"cannot read the Ray auth token file {path} (from {named_by}): {exc.strerror}"
        ) from None
    if not token:
        raise RayAuthError(f"the Ray auth token file {path} (from {named_by}) is empty")
    return token


def auth_headers(token: str | None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}``, or nothing without a token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def explain_refusal(status: int, address: str, sent_token: bool) -> str | None:
    """A one-line cause for a 401/403 from a Ray dashboard, or None for any other status."""
    if status == 401 and not sent_token:
        return (
            f"the Ray dashboard at {address} answered HTTP 401: Ray token authentication is on "
            f"and Conveyor found no token. Give it the cluster's token ({TOKEN_ENV}, "
            f"{TOKEN_PATH_ENV} or ~/.ray/auth_token; for Airflow, the password of the ray "
            f"Connection), or start Ray with {AUTH_MODE_ENV}=disabled to opt out"
        )
    if status in (401, 403):
        return (
            f"the Ray dashboard at {address} answered HTTP {status}: it refused Conveyor's Ray "
            f"auth token; check that {TOKEN_ENV}, {TOKEN_PATH_ENV}, ~/.ray/auth_token or the "
            "ray Connection's password holds the token the cluster was started with"
        )
    return None
