"""Real services for the integration and end-to-end tests: a Ray head, an MLflow server and an
Airflow metadata DB, as pytest fixtures (registered in ``tests/conftest.py``).

They are started with the same code as ``conveyor up``, on free ports, once per session and
only when a test asks for them, and always stopped (by PID), also when a test fails.
"""

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.processes import free_port, stop
from conveyor.stack import start_mlflow, start_ray
from pipelines.catalog import get_use_case
from pipelines.settings import ConveyorSettings

ROOT = Path(__file__).resolve().parents[1]


RAY_AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory) -> dict[str, str | None]:
    """The session's environment. ``None`` means unset for the session.

    Ray token authentication is on, as on the machine of anyone who ever ran Ray there: HOME
    is a folder holding ``.ray/auth_token`` and ``RAY_AUTH_MODE`` is unset, so ``ray start``
    turns token auth on and every Conveyor client must find and send the token itself."""
    home = tmp_path_factory.mktemp("stack")
    user_home = home / "user-home"
    (user_home / ".ray").mkdir(parents=True)
    token_file = user_home / ".ray" / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    return {
        **dict.fromkeys(RAY_AUTH_VARIABLES),
        "HOME": str(user_home),
        "CONVEYOR_HOME": str(home),
        "CONVEYOR_RAY_GCS_PORT": str(free_port()),
        "CONVEYOR_RAY_DASHBOARD_PORT": str(free_port()),
        "CONVEYOR_RAY_CLIENT_PORT": str(free_port()),
        "CONVEYOR_RAY_DASHBOARD_AGENT_PORT": str(free_port()),
        "CONVEYOR_SERVE_HTTP_PORT": str(free_port()),
        "CONVEYOR_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "CONVEYOR_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "CONVEYOR_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
        "CONVEYOR_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
        "CONVEYOR_MLFLOW_PORT": str(free_port()),
        # Logical CPUs: the session's tests leave Serve applications deployed, as users of a
        # shared cluster would (about 2 CPUs by the real-stack tests), and a default 2-worker
        # training must still fit next to them.
        "CONVEYOR_RAY_NUM_CPUS": "6",
        # The Ray head (and so the Serve router) inherits it; only apps that require auth
        # use it.
        "CONVEYOR_SERVE_TOKEN": secrets.token_urlsafe(24),
        # Ray Train's controller, started by each training job on the head, inherits these:
        # it notices a finished (or failed) worker group within half a second instead of two,
        # and does not start a preemption-watcher actor, which watches for cloud nodes being
        # reclaimed and has nothing to watch on this machine. Each training job is a few
        # seconds shorter; what it does is unchanged.
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    }


@pytest.fixture(scope="session")
def settings(stack_env):
    """The settings every process of the session uses (exported to the environment), with
    predictive maintenance's names (model, Serve application, route)."""
    saved = {k: os.environ.get(k) for k in stack_env}
    for key, value in stack_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield ConveyorSettings().for_use_case(get_use_case("predictive_maintenance"))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def ray_head(settings):
    """A real local Ray head (``ray start --head``)."""
    record = start_ray(settings)
    try:
        yield settings
    finally:
        stop(record)


@pytest.fixture(scope="session")
def local_stack(ray_head, settings):
    """Ray head + MLflow server."""
    record = start_mlflow(settings)
    try:
        yield settings
    finally:
        stop(record)


@dataclass
class AirflowHome:
    env: dict[str, str]

    def dag_test_argv(self, dag_file: Path, dag_id: str, logical_date: str, conf: dict) -> list:
        return [
            sys.executable,
            "-c",
            RUN_DAG,
            str(dag_file),
            dag_id,
            logical_date,
            json.dumps(conf),
        ]

    def env_for(self, dag_file: Path) -> dict[str, str]:
        """``dag.test`` syncs the DAGs folder to the DB, so it must be the file's folder."""
        return {**self.env, "AIRFLOW__CORE__DAGS_FOLDER": str(dag_file.parent)}

    def run_dag(
        self,
        dag_file: Path,
        dag_id: str,
        logical_date: str,
        conf: dict | None = None,
        env: dict[str, str] | None = None,
    ):
        """Run a DAG with ``dag.test()`` in a fresh process (``env``: variables to add or
        override, such as another lake); (result, stdout, stderr)."""
        argv = self.dag_test_argv(dag_file, dag_id, logical_date, conf or {})
        env = {**self.env_for(dag_file), **(env or {})}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, f"dag.test printed no result; stderr tail:\n{done.stderr[-4000:]}"
        return json.loads(lines[-1].removeprefix("RESULT ")), done.stdout, done.stderr


RUN_DAG = """
import json, sys, pendulum
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[sys.argv[2]]
when = pendulum.parse(sys.argv[3])  # run_after too, so the run_id is the same on every call
run = dag.test(logical_date=when, run_after=when, run_conf=json.loads(sys.argv[4]))
tis = run.get_task_instances()
states = {ti.task_id: str(ti.state) for ti in tis}
seconds = {ti.task_id: ti.duration for ti in tis if ti.duration is not None}
print("RESULT " + json.dumps(
    {"state": str(run.state), "run_id": run.run_id, "tasks": states, "seconds": seconds}
))
"""


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory, ray_head) -> AirflowHome:
    """A migrated SQLite metadata DB, and a ``conveyor_ray`` Connection to the test Ray head."""
    home = tmp_path_factory.mktemp("airflow")
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_CONVEYOR_RAY": json.dumps(
                {"conn_type": "ray", "host": ray_head.host, "port": ray_head.ray_dashboard_port}
            ),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    migrate = [sys.executable, "-m", "airflow", "db", "migrate"]
    subprocess.run(migrate, env=env, check=True, capture_output=True, timeout=300)
    return AirflowHome(env)
