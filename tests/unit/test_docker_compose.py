"""docker-compose.yaml and its Celery override, checked where Docker cannot run: valid against
the Compose specification's JSON schema (vendored in tests/fixtures from docker-compose 1.29.2,
Apache-2.0), no committed secrets, dashboards on localhost, Ray token authentication, GPU
workers, health-gated start order, and the same Airflow commands and settings as the
real-stack and Celery-stack tests."""

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from conveyor.stack import AIRFLOW_COMPONENTS, airflow_server_env
from pipelines.settings import ConveyorSettings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"


@pytest.fixture(scope="module")
def raw() -> str:
    return (ROOT / "docker-compose.yaml").read_text()


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return yaml.safe_load(raw)  # resolves the YAML anchors and merge keys


@pytest.fixture(scope="module")
def celery_raw() -> str:
    return (ROOT / "docker-compose.celery.yaml").read_text()


@pytest.fixture(scope="module")
def celery(celery_raw) -> dict:
    return yaml.safe_load(celery_raw)


@pytest.mark.parametrize("name", ["compose", "celery"])
def test_valid_against_the_compose_specification(name, request):
    import json

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    document = request.getfixturevalue(name)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors][:5]


def test_the_celery_override_matches_the_tested_celery_stack(compose, celery, celery_raw, tmp_path):
    """Every Airflow service of the override runs the CeleryExecutor with the settings
    ``airflow_server_env`` gives it in tests/e2e/test_celery_stack.py; its workers extend the
    scheduler's image and environment; its variables are documented; Redis is not published."""
    settings = ConveyorSettings(home=tmp_path, airflow_executor="CeleryExecutor")
    tested = airflow_server_env(settings, "postgresql+psycopg://u@h/db", "pw", "jwt")
    keys = {k for k in tested if k.startswith(("AIRFLOW__CELERY__", "AIRFLOW__OPERATORS__"))}
    keys.add("AIRFLOW__CORE__EXECUTOR")
    services = celery["services"]
    for name in [*(f"airflow-{c}" for c in AIRFLOW_COMPONENTS), "airflow-worker"]:
        assert name == "airflow-worker" or name in compose["services"], name
        environment = services[name]["environment"]
        assert keys <= set(environment), (name, keys - set(environment))
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert environment["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://")
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    worker = services["airflow-worker"]
    assert worker["extends"] == {"file": "docker-compose.yaml", "service": "airflow-scheduler"}
    assert worker["command"].split()[:3] == ["airflow", "celery", "worker"]
    assert worker["deploy"]["replicas"] == 2
    assert "ports" not in services["redis"]
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", celery_raw))  # $${X}: a literal
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert referenced <= documented, referenced - documented
    assert "COMPOSE_FILE" in documented


def test_no_secret_is_committed_and_every_variable_is_documented(raw, compose):
    referenced = set(re.findall(r"\$\{([A-Z_]+)", raw))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    assert referenced <= documented, referenced - documented
    for line in example.splitlines():  # the example holds no secret values
        if re.match(r"^[A-Z_]*(PASSWORD|SECRET|TOKEN)=", line):
            assert line.endswith("="), line
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"(PASSWORD|SECRET|TOKEN)$", key):
                assert str(value).startswith("${"), f"{name}: {key} is not from .env"
            if re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)):  # user:password@host
                assert "${POSTGRES_PASSWORD" in str(value), f"{name}: {key} holds a password"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_published_ports_are_bound_to_localhost(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to every interface"


def test_gpu_workers_scale_and_everything_starts_in_order(compose):
    services = compose["services"]
    worker = services["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    assert "container_name" not in worker and "ports" not in worker  # --scale works
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert spec["condition"] in ("service_healthy", "service_completed_successfully")
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
    long_running = set(services) - {"airflow-init"}
    assert all("healthcheck" in services[n] or n == "ray-worker" for n in long_running)
    assert "build" in services["airflow-scheduler"]
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in str(compose)
    assert "requirements.txt" in (ROOT / "Dockerfile").read_text()


def test_airflow_services_match_the_tested_real_stack(compose, tmp_path):
    services = compose["services"]
    for component in AIRFLOW_COMPONENTS:
        command = services[f"airflow-{component}"]["command"]
        assert command.split()[:2] == ["airflow", component]
    tested = airflow_server_env(
        ConveyorSettings(home=tmp_path), "postgresql+psycopg://u@h/db", "pw", "jwt"
    )
    keys = {k for k in tested if k.startswith("AIRFLOW__") and k.endswith(("CONN", "ASYNC"))}
    keys |= {
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    }
    for component in AIRFLOW_COMPONENTS:
        environment = services[f"airflow-{component}"]["environment"]
        assert keys <= set(environment), keys - set(environment)
        assert environment["AIRFLOW__CORE__EXECUTOR"] == tested["AIRFLOW__CORE__EXECUTOR"]


def test_ray_runs_with_token_auth_and_airflow_gets_the_token_by_its_connection(compose):
    import json

    services = compose["services"]
    for name in ("ray-head", "ray-worker"):
        environment = services[name]["environment"]
        assert environment["RAY_AUTH_MODE"] == "token", name
        assert environment["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name
    # The head's health check uses a path the token check lets through (it has no token).
    health = " ".join(services["ray-head"]["healthcheck"]["test"])
    assert "/api/gcs_healthz" in health
    for component in AIRFLOW_COMPONENTS:
        environment = services[f"airflow-{component}"]["environment"]
        connection = json.loads(environment["AIRFLOW_CONN_CONVEYOR_RAY"])
        assert connection["password"].startswith("${RAY_AUTH_TOKEN:?")
        assert "RAY_AUTH_TOKEN" not in environment  # the Connection is its only way in


def test_the_report_task_can_write_the_run_note_as_the_notes_user(compose, tmp_path, monkeypatch):
    """The Connection's user exists with role User, and airflow-init writes its password into
    the auth manager's file (the CLI command it runs, here on a scratch file)."""
    import json

    from typer.testing import CliRunner

    from conveyor.cli import app
    from conveyor.stack import NOTES_USER

    services = compose["services"]
    for component in AIRFLOW_COMPONENTS:
        environment = services[f"airflow-{component}"]["environment"]
        users = environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")
        assert f"{NOTES_USER}:user" in users
        connection = json.loads(environment["AIRFLOW_CONN_CONVEYOR_AIRFLOW_API"])
        assert connection["login"] == NOTES_USER
        assert connection["password"].startswith("${AIRFLOW_NOTES_PASSWORD:?")
    init = services["airflow-init"]["command"]
    passwords_file = services["airflow-api-server"]["environment"][
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    ]
    assert f"conveyor airflow-passwords {passwords_file}" in init

    conn = {**connection, "password": "from-dotenv"}
    monkeypatch.setenv("AIRFLOW_CONN_CONVEYOR_AIRFLOW_API", json.dumps(conn))
    path = tmp_path / "passwords.json"
    result = CliRunner().invoke(app, ["airflow-passwords", str(path)])
    assert result.exit_code == 0, result.output
    written = json.loads(path.read_text())
    assert written[NOTES_USER] == "from-dotenv" and written["admin"]
    assert path.stat().st_mode & 0o077 == 0  # readable by Airflow's user only
    monkeypatch.delenv("AIRFLOW_CONN_CONVEYOR_AIRFLOW_API")
    result = CliRunner().invoke(app, ["airflow-passwords", str(path)])
    assert result.exit_code == 1 and "must log in as 'conveyor'" in result.output
