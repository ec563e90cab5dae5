"""Test-wide isolation: Airflow and Conveyor write under a temporary directory, never ~/."""

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The real services (Ray head, MLflow, Airflow DB) for tests/integration and tests/e2e.
pytest_plugins = ["tests.local_stack"]


def pytest_configure(config):
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-tests-"))
    os.environ.setdefault("AIRFLOW_HOME", str(scratch / "airflow"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
    os.environ.setdefault("CONVEYOR_HOME", str(scratch / "conveyor"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
