"""The machine's own services the tests use (PostgreSQL, Redis): where they are, and what a
test does when one is missing: in CI, where they are part of the build, it fails with the
reason; elsewhere it skips with the reason printed."""

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_PG_URI", "postgresql://postgres@127.0.0.1:5432/postgres"
)
"""A PostgreSQL database the tests may connect to and create databases from (trust auth on
the project's machines)."""
REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(cause: str):
    """Fail in CI (a missing service is a broken build), skip elsewhere; never returns."""
    if os.environ.get("CI"):
        pytest.fail(cause)
    pytest.skip(cause)


def postgres_url() -> str:
    """``POSTGRES_URL``, after checking that it answers."""
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    return POSTGRES_URL


def redis_url() -> str:
    """``REDIS_URL``, after checking that it answers."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the block, dropped afterwards (forcibly: the servers
    the test started may still hold connections); its SQLAlchemy URL with psycopg 3."""
    import psycopg

    admin = postgres_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        server = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
