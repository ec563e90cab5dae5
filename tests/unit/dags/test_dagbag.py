"""The DAG folder parses quickly, without errors, into the expected, retriable tasks."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHAIN = ["ingest", "validate", "train", "register", "promote", "deploy", "smoke_test", "report"]
EXPECTED_TASKS = set(CHAIN)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors_and_expected_dags(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"predictive_maintenance", "serving_rollout"}


def test_tasks_are_linked_in_order_and_retriable(dagbag):
    dag = dagbag.dags["predictive_maintenance"]
    assert set(dag.task_ids) == EXPECTED_TASKS
    for upstream, downstream in zip(CHAIN, CHAIN[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    for task in dag.tasks:
        assert task.retries >= 1, f"{task.task_id} has no retries"
        assert task.retry_exponential_backoff


def test_schedule_and_params(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["predictive_maintenance"]
    assert dag.catchup is False
    assert dag.start_date.tzinfo is not None
    assert {"days", "source", "epochs", "num_workers", "use_gpu"} <= set(dag.params)
    assert {"deploy_mode", "canary_fraction", "start_date", "end_date"} <= set(dag.params)
    ok = copy.deepcopy(dag.params)
    ok.update({"start_date": "2026-11-01", "end_date": "2026-11-07"})
    ok.validate()
    bad = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError):
        bad.update({"start_date": "the first of november"})
        bad.validate()
    assert dag.doc_md and "Ray" in dag.doc_md


def test_rollout_dag_offers_every_action_and_validates_the_version(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["serving_rollout"]
    assert dag.schedule is None or str(dag.timetable.summary) in ("None", "")
    params = dag.params
    assert set(params.get_param("action").schema["enum"]) == {
        "deploy",
        "canary",
        "shadow",
        "promote",
        "rollback",
    }
    ok = copy.deepcopy(params)
    ok.update({"action": "canary", "version": "3", "fraction": 0.2})
    ok.validate()
    bad = copy.deepcopy(params)
    with pytest.raises(ParamValidationError, match="version"):
        bad.update({"version": "three"})
        bad.validate()
    assert dag.get_task("smoke_test") in dag.get_task("rollout").downstream_list


@pytest.mark.parametrize("name", ["predictive_maintenance.py", "serving_rollout.py"])
def test_dag_file_parses_without_heavy_imports(name):
    """A fresh interpreter imports the DAG file; pandas/torch/ray/GX/MLflow stay unloaded, which
    is what keeps parsing fast (no wall-clock threshold here: machines are noisy)."""
    dag_file = str(ROOT / "dags" / name)
    code = (
        "import json, sys, importlib.util as u;"
        f"sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'plugins')!r}];"
        f"s = u.spec_from_file_location('pm', {dag_file!r});"
        "s.loader.exec_module(u.module_from_spec(s));"
        "print(json.dumps([m for m in ('pandas', 'torch', 'ray', 'great_expectations', 'mlflow')"
        " if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert heavy == [], f"heavy modules imported at DAG parse time: {heavy}"


def test_postgres_source_comes_from_the_conveyor_telemetry_db_connection(monkeypatch):
    import importlib.util

    monkeypatch.setenv(
        "AIRFLOW_CONN_CONVEYOR_TELEMETRY_DB",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db.internal",
                "port": 5432,
                "login": "reader",
                "password": "pw",
                "schema": "plant",
                "extra": {"table": "sensors.telemetry"},
            }
        ),
    )
    spec = importlib.util.spec_from_file_location(
        "pm_dag", ROOT / "dags" / "predictive_maintenance.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from pipelines.settings import get_settings

    source, table = module._source("postgres", get_settings())
    assert source == "postgres://reader:pw@db.internal:5432/plant"
    assert table == "sensors.telemetry"
    assert module._source("generator", get_settings())[0] == "generator"


def test_a_run_covers_the_last_complete_day():
    """Scheduled [D, D+1) covers D; a manual run at 21:35 covers the day before (complete)."""
    import importlib.util

    import pendulum

    spec = importlib.util.spec_from_file_location(
        "pm_dag", ROOT / "dags" / "predictive_maintenance.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scheduled = {"data_interval_end": pendulum.datetime(2026, 11, 3, tz="UTC")}
    manual = {"data_interval_end": pendulum.datetime(2026, 11, 29, 21, 35, tz="UTC")}
    assert str(module._run_day(scheduled)) == "2026-11-02"
    assert str(module._run_day(manual)) == "2026-11-28"
