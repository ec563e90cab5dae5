"""Locks for every "one at a time" in Conveyor's own processes.

Two kinds, both released when the holder exits or dies (nothing to clean up after a SIGKILL):

- a file lock (``flock``): holds between processes that share the file's filesystem (one
  machine, or a shared POSIX mount), not across object stores;
- a PostgreSQL session advisory lock: holds between processes on any machines that reach the
  same database (Airflow's metadata DB, for workers on several hosts). The server drops it
  when the holder's connection ends.

``Lock`` names one and says where it lives; ``Lock.held()`` takes it for a block.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path


class LockTimeout(TimeoutError):
    """The lock was not free within the timeout."""


@contextlib.contextmanager
def exclusive(lock_path: str | Path, timeout: float | None = None):
    """Hold the file lock on ``lock_path`` (created with its folders) for the block; wait at
    most ``timeout`` seconds for it (``None``: as long as it takes)."""
    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        if timeout is None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"lock {path}: still held by another process after {timeout:g}s"
                        ) from None
                    time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def advisory_key(name: str) -> int:
    """The signed 64-bit key ``pg_advisory_lock`` takes, stable for a name across machines
    and Python versions (not ``hash()``, which is salted per process)."""
    digest = hashlib.blake2b(f"conveyor:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def libpq_url(url: str) -> str:
    """A SQLAlchemy-style URL (``postgresql+psycopg://``, as Airflow's ``sql_alchemy_conn``)
    as libpq takes it (``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(f"lock database URL {url!r}: not a postgresql:// URL")
    return f"postgresql://{rest}"


@contextlib.contextmanager
def advisory(database_url: str, name: str, timeout: float | None = None):
    """Hold the PostgreSQL session advisory lock ``name`` on ``database_url`` for the block,
    on a connection of its own (so the lock ends with it, also when this process is killed);
    wait at most ``timeout`` seconds for it."""
    import psycopg

    url = libpq_url(database_url)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        where = url.rsplit("@", 1)[-1]  # no password in the message
        raise ConnectionError(
            f"lock {name!r}: cannot reach PostgreSQL at {where}: {cause}"
        ) from None
    key = advisory_key(name)
    with conn:
        if timeout is not None:
            conn.execute(f"SET lock_timeout = '{int(timeout * 1000)}ms'")
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        except psycopg.errors.LockNotAvailable:
            raise LockTimeout(
                f"lock {name!r}: still held by another session after {timeout:g}s"
            ) from None
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


@dataclass(frozen=True)
class Lock:
    """A named lock and where it lives: PostgreSQL when ``database_url`` is set (holds across
    machines), else a file under ``directory`` (holds on one machine or a shared mount).
    Plain data, so it crosses process boundaries as an argument."""

    name: str
    directory: str
    database_url: str | None = None

    @property
    def scope(self) -> str:
        """Where the lock holds, in words (for logs and decisions)."""
        if self.database_url:
            return f"PostgreSQL advisory lock at {libpq_url(self.database_url).rsplit('@', 1)[-1]}"
        return f"file lock in {self.directory}"

    def held(self, timeout: float | None = None):
        """A context manager holding the lock for its block."""
        if self.database_url:
            return advisory(self.database_url, self.name, timeout)
        return exclusive(Path(self.directory) / f"{self.name}.lock", timeout)
