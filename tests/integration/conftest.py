"""Real services for integration tests: a Ray head and an MLflow server on free ports.

They are started with the same code as ``conveyor up`` and always stopped (by PID), also when a
test fails.
"""

import os
import socket

import pytest

from conveyor.processes import stop
from conveyor.stack import start_mlflow, start_ray
from pipelines.settings import ConveyorSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("stack")
    return {
        "CONVEYOR_HOME": str(home),
        "CONVEYOR_RAY_GCS_PORT": str(free_port()),
        "CONVEYOR_RAY_DASHBOARD_PORT": str(free_port()),
        "CONVEYOR_RAY_CLIENT_PORT": str(free_port()),
        "CONVEYOR_RAY_DASHBOARD_AGENT_PORT": str(free_port()),
        "CONVEYOR_SERVE_HTTP_PORT": str(free_port()),
        "CONVEYOR_MLFLOW_PORT": str(free_port()),
        "CONVEYOR_RAY_NUM_CPUS": "4",
    }


@pytest.fixture(scope="session")
def local_stack(stack_env):
    """Ray head + MLflow server; yields the settings every process of the test must use."""
    saved = {k: os.environ.get(k) for k in stack_env}
    os.environ.update(stack_env)
    settings = ConveyorSettings()
    started = []
    try:
        started.append(start_ray(settings))
        started.append(start_mlflow(settings))
        yield settings
    finally:
        for record in reversed(started):
            stop(record)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
