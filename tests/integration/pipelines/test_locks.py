"""Locks against real processes: a holder on another process keeps the lock until it ends,
and a holder SIGKILLed mid-block releases it (the server drops a PostgreSQL session's advisory
locks with its connection; the kernel drops a dead process's flock). The PostgreSQL kind runs
against the machine's server, the one a multi-host Airflow would share."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pipelines.locks import Lock, LockTimeout, advisory_key, libpq_url
from tests.services import postgres_url

pytestmark = pytest.mark.integration

HOLDER = """
import sys, time
from pipelines.locks import Lock
lock = Lock(sys.argv[1], sys.argv[2], sys.argv[3] or None)
with lock.held():
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture(params=["file", "postgresql"])
def lock(request, tmp_path):
    name = f"test-{uuid.uuid4().hex[:12]}"
    url = postgres_url() if request.param == "postgresql" else None
    return Lock(name, str(tmp_path), url)


@pytest.fixture
def holder(lock):
    """A process that takes ``lock`` and keeps it until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, lock.name, lock.directory, lock.database_url or ""],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))),
    )
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)


def test_a_held_lock_is_not_taken_and_a_killed_holder_releases_it(lock, holder):
    with pytest.raises(LockTimeout, match="still held"):
        with lock.held(timeout=1.0):
            pytest.fail("took a lock another process holds")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    started = time.monotonic()
    with lock.held(timeout=30.0):
        waited = time.monotonic() - started
    # The release is the server's or kernel's, on the holder's death: no stale-lock timeout.
    assert waited < 15.0, waited


def test_the_lock_is_free_again_after_its_block(lock):
    for _ in range(2):
        with lock.held(timeout=5.0):
            pass


def test_other_names_do_not_block(lock, holder):
    other = Lock(f"{lock.name}-other", lock.directory, lock.database_url)
    with other.held(timeout=5.0):
        pass


def test_an_unreachable_database_is_a_one_line_error_without_the_password():
    lock = Lock("promote-x", "/unused", "postgresql+psycopg://conveyor:s3cret@127.0.0.1:1/airflow")
    with pytest.raises(ConnectionError) as caught:
        with lock.held(timeout=1.0):
            pass
    message = str(caught.value)
    assert "promote-x" in message and "127.0.0.1:1/airflow" in message
    assert "s3cret" not in message and "\n" not in message


def test_keys_and_urls():
    assert advisory_key("promote-pm") == advisory_key("promote-pm") != advisory_key("promote-vq")
    assert -(2**63) <= advisory_key("promote-pm") < 2**63
    assert libpq_url("postgresql+psycopg://u@h:5432/airflow") == "postgresql://u@h:5432/airflow"
    with pytest.raises(ValueError, match="not a postgresql:// URL"):
        libpq_url("sqlite:////tmp/airflow.db")
