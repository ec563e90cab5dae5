"""The DAG folder parses quickly, without errors, into the expected, retriable tasks."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TRAINING = ["plan", "train", "register", "promote", "deploy", "smoke_test", "report"]
CHAIN = ["ingest", "validate", *TRAINING]
WEEK = [f"2026-11-0{d}" for d in range(2, 9)]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors_and_every_use_case_has_its_dags(dagbag):
    from pipelines.catalog import discover_use_cases

    assert dagbag.import_errors == {}
    expected = {
        dag_id
        for uc in discover_use_cases().values()
        for dag_id in (
            uc.run_dag_id,
            uc.daily_dag_id,
            uc.training_dag_id,
            uc.rollout_dag_id,
            uc.monitor_dag_id,
            uc.retrain_dag_id,
        )
    }
    assert set(dagbag.dag_ids) == expected
    # Predictive maintenance kept the DAG ids it had before the use-case contract.
    assert {"predictive_maintenance", "serving_rollout", "telemetry_daily", "model_training"} <= (
        expected
    )


@pytest.mark.parametrize(
    ("dag_id", "chain"),
    [
        ("predictive_maintenance", CHAIN),
        ("model_training", ["partitions", *TRAINING]),
        ("telemetry_daily", ["ingest", "validate"]),
    ],
)
def test_tasks_are_linked_in_order_and_retriable(dagbag, dag_id, chain):
    dag = dagbag.dags[dag_id]
    assert set(dag.task_ids) == set(chain)
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    for task in dag.tasks:
        assert task.retries >= 1, f"{task.task_id} has no retries"
        assert task.retry_exponential_backoff


def test_daily_ingestion_owns_one_day_per_run_and_announces_validated_data(dagbag):
    from airflow.sdk import CronPartitionTimetable

    dag = dagbag.dags["telemetry_daily"]
    assert isinstance(dag.timetable, CronPartitionTimetable)
    assert dag.catchup is False and dag.max_active_runs == 4
    assert [a.name for a in dag.get_task("validate").outlets] == ["validated_telemetry"]
    assert not dag.get_task("ingest").outlets  # only validated data is announced
    assert {"source", "machines", "faults"} <= set(dag.params)


def test_daily_catchup_is_a_deployment_setting(monkeypatch):
    """Off by default (backfills choose their range); CONVEYOR_DAILY_CATCHUP turns it on."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CONVEYOR_DAILY_CATCHUP", "true")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "use_cases.py"))
    assert bag.dags["telemetry_daily"].catchup is True


def test_a_scheduled_daily_run_owns_the_day_before_it(dagbag):
    """The run at midnight owns the day that just ended; a backfill over a week gives the
    week's seven days."""
    import pendulum

    from conveyor_dag_factory.ingestion import partition_day

    dag = _serialized(dagbag, "telemetry_daily")
    run = dag.timetable.next_dagrun_info_v2(
        last_dagrun_info=None, restriction=_catchup_from(pendulum.datetime(2026, 11, 24, tz="UTC"))
    )
    assert str(run.run_after.date()) == "2026-11-24"
    assert str(partition_day(run.partition_key)) == "2026-11-23"
    infos = dag.iter_dagrun_infos_between(
        pendulum.datetime(2026, 11, 2, tz="UTC"), pendulum.datetime(2026, 11, 8, tz="UTC")
    )
    assert [str(partition_day(i.partition_key)) for i in infos] == WEEK
    with pytest.raises(ValueError, match="partition_key 'W45' is not a day"):
        partition_day("W45")


def test_training_runs_once_per_week_of_validated_days(dagbag):
    """The asset policy: each validated day maps to its ISO week, and the week's run needs
    all seven days."""
    dag = dagbag.dags["model_training"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    mapper = _serialized(dagbag, "model_training").timetable.get_partition_mapper(
        name="validated_telemetry", uri="conveyor://lake/telemetry/validated"
    )
    assert {mapper.to_downstream(f"{day}T00:00:00") for day in WEEK} == {"2026-11-02 (W45)"}
    assert mapper.to_downstream("2026-11-09T00:00:00") == "2026-11-09 (W46)"
    assert sorted(mapper.to_upstream("2026-11-02 (W45)")) == [f"{d}T00:00:00" for d in WEEK]
    assert {"force_retrain", "epochs", "deploy_mode"} <= set(dag.params)


def _serialized(dagbag, dag_id):
    """The DAG as the scheduler sees it (core timetables, after serialization)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags[dag_id]))


def _catchup_from(earliest):
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=earliest, latest=None, catchup=True)


def test_schedule_and_params(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["predictive_maintenance"]
    assert dag.catchup is False
    assert dag.start_date.tzinfo is not None
    assert {"days", "source", "epochs", "num_workers", "use_gpu", "force_retrain"} <= set(
        dag.params
    )
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


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "dags").glob("*.py")))
def test_dag_file_parses_without_heavy_imports(name):
    """A fresh interpreter imports the DAG file; pandas/torch/ray/GX/MLflow stay unloaded, which
    is what keeps parsing fast (no wall-clock threshold here: machines are noisy)."""
    dag_file = str(ROOT / "dags" / name)
    code = (
        "import json, sys, importlib.util as u;"
        f"sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'plugins')!r}, {str(ROOT / 'dags')!r}];"
        f"s = u.spec_from_file_location('pm', {dag_file!r});"
        "s.loader.exec_module(u.module_from_spec(s));"
        "print(json.dumps([m for m in ('pandas', 'torch', 'ray', 'great_expectations', 'mlflow')"
        " if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert heavy == [], f"heavy modules imported at DAG parse time: {heavy}"


def test_postgres_source_comes_from_the_conveyor_telemetry_db_connection(monkeypatch):
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
    from conveyor_dag_factory.ingestion import source_of
    from pipelines.settings import get_settings

    source, table = source_of("postgres", get_settings(), "predictive_maintenance")
    assert source == "postgres://reader:pw@db.internal:5432/plant"
    assert table == "sensors.telemetry"
    assert source_of("generator", get_settings(), "predictive_maintenance")[0] == "generator"
    # Landing files: the use case's own folder under the landing root, nobody else's.
    assert source_of("landing", get_settings(), "energy_demand") == ("energy_demand", None)


def test_a_manual_run_covers_the_last_complete_day():
    """An interval [D, D+1) covers D; a manual run at 21:35 covers the day before (complete)."""
    import pendulum

    from conveyor_dag_factory.ingestion import last_complete_day

    scheduled = {"data_interval_end": pendulum.datetime(2026, 11, 3, tz="UTC")}
    manual = {"data_interval_end": pendulum.datetime(2026, 11, 29, 21, 35, tz="UTC")}
    assert str(last_complete_day(scheduled)) == "2026-11-02"
    assert str(last_complete_day(manual)) == "2026-11-28"


def test_a_use_case_from_outside_the_tree_gets_its_own_dags_with_no_edit_here():
    """The factory builds the four DAGs of an entry-point use case (tests/fixtures), named
    after it, with its gate's direction, next to predictive maintenance's, at parse time
    without heavy imports."""
    outside = ROOT / "tests" / "fixtures" / "outside_use_case"
    code = (
        "import json, sys;"
        f"sys.path[:0] = [{str(outside)!r}, {str(ROOT / 'dags')!r}];"
        "from airflow.dag_processing.dagbag import DagBag;"
        f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r});"
        "d = bag.dags;"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},"
        " 'ids': sorted(bag.dag_ids),"
        " 'asset': [a.uri for a in d['energy_demand_daily'].get_task('validate').outlets],"
        " 'tags': sorted(d['energy_demand'].tags),"
        " 'gate': sorted(k for k in d['energy_demand'].params if k.startswith(('min_', 'max_'))),"
        " 'heavy': [m for m in ('pandas', 'torch', 'ray', 'great_expectations', 'mlflow')"
        " if m in sys.modules]}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["errors"] == {}
    assert {
        "energy_demand",
        "energy_demand_daily",
        "energy_demand_training",
        "energy_demand_rollout",
        "energy_demand_monitor",
        "energy_demand_retrain",
        "predictive_maintenance",
        "telemetry_daily",
        "model_training",
        "serving_rollout",
        "predictive_maintenance_monitor",
        "predictive_maintenance_retrain",
        "visual_quality_control",
        "visual_quality_control_daily",
        "visual_quality_control_training",
        "visual_quality_control_rollout",
        "visual_quality_control_monitor",
        "visual_quality_control_retrain",
    } == set(seen["ids"])
    assert seen["asset"] == ["conveyor://lake/meter_readings/validated"]
    assert seen["tags"] == ["conveyor", "forecasting"]
    assert seen["gate"] == ["max_mae"]  # lower is better: the bar is a maximum
    assert seen["heavy"] == []


def test_the_training_dag_reads_its_week_from_its_use_case_s_table(dagbag, tmp_path, monkeypatch):
    """The week's partitions come from the use case's own lake table (its task body, run)."""
    import datetime as dt

    from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
    from pipelines.usecases.predictive_maintenance.ingest import ingest_days

    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    days = [dt.date.fromisoformat(d) for d in WEEK]
    ingest_days(days, str(tmp_path / "lake"), generator=GeneratorConfig(machines=1, minutes=30))
    partitions = dagbag.dags["model_training"].get_task("partitions").python_callable
    assert partitions(partition_key="2026-11-02T00:00:00") == WEEK


def test_a_use_case_without_a_learner_gets_only_its_ingest_and_validate_dag():
    from conveyor_dag_factory import build_dags
    from pipelines.usecase import TableSpec, UseCase

    table = TableSpec("meters", {"id": "string", "ts": "datetime64[us, UTC]"}, ("id",), "ts")
    assert list(build_dags(UseCase(name="meters_only", title="M", table=table))) == [
        "meters_only_daily"
    ]


def test_the_monitoring_dag_runs_per_completed_hour_of_traffic_and_daily(dagbag):
    """Event-driven: the triggerer watches the use case's captured traffic
    (``CapturedHoursTrigger``) and each completed hour is an asset event that starts the
    monitoring DAG; the daily clock stays as the safety net."""
    from pipelines.catalog import get_use_case

    for name in ("predictive_maintenance", "visual_quality_control"):
        use_case = get_use_case(name)
        timetable = dagbag.dags[use_case.monitor_dag_id].timetable
        assert "expression='0 0 * * *'" in repr(timetable.timetable), timetable.timetable
        (asset,) = timetable.asset_condition.objects
        assert asset.uri == use_case.served_asset_uri
        (watcher,) = asset.watchers
        path, kwargs = watcher.trigger.serialize()
        assert path.endswith("CapturedHoursTrigger") and kwargs["use_case"] == name
