"""The DAG factory: for each registered use case, the DAGs of its lifecycle.

- **run** (``<name>``, by hand: UI form or REST API): ingest → validate → plan → train →
  register → promote → deploy → smoke_test → report, for a number of days or a date range;
- **daily** (``<name>_daily``, every day at 00:00 UTC; backfills): ingest → validate for the
  day that just ended; a validated day emits the use case's validated-data asset event;
- **training** (``<name>_training``, when all seven days of an ISO week are validated):
  partitions → plan → train → … → report on that week;
- **rollout** (``<name>_rollout``, by hand): one serving action (deploy, canary, shadow,
  promote, rollback) on the use case's Serve application;
- **monitor** (``<name>_monitor``, per completed hour of traffic, and daily): the suite and
  drift checks on the traffic the endpoint captured, a drift page in the reports; drift
  emits the use case's drift asset;
- **retrain** (``<name>_retrain``, on a drift asset event): plan → train → … → report on the
  latest validated days, through the same promotion gate.

Ids, assets, the model, the Serve application and its route are named after the use case
(``pipelines.usecase``). Building a DAG imports no heavy library: task bodies import what
they need and look their use case up by name when they run.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronPartitionTimetable,
    CronTriggerTimetable,
    Param,
    PartitionedAssetTimetable,
    RollupMapper,
    StartOfWeekMapper,
    WeekWindow,
    task,
)

from conveyor_dag_factory.defaults import RETRIES, START_DATE
from conveyor_dag_factory.docs import (
    daily_doc,
    monitor_doc,
    retrain_doc,
    rollout_doc,
    run_doc,
    training_doc,
)
from conveyor_dag_factory.ingestion import (
    ingest_params,
    ingest_with_params,
    last_complete_day,
    partition_day,
    validated_asset,
)
from conveyor_dag_factory.training import (
    settings_macro,
    smoke_test,
    train_register_serve,
    training_params,
    with_default,
)
from conveyor_provider.lineage import lineage_task
from conveyor_provider.operators.ray_job import RayJobOperator
from conveyor_provider.operators.validation import DataValidationOperator
from conveyor_provider.triggers.captured import CapturedHoursTrigger
from pipelines.usecase import UseCase

WEEKLY = RollupMapper(upstream_mapper=StartOfWeekMapper(), window=WeekWindow())
"""The training DAG's asset policy: seven daily partitions (Monday to Sunday) roll up into
one week; the run fires when all seven have arrived (the default wait policy)."""


def build_dags(use_case: UseCase, *, daily_catchup: bool = False) -> dict[str, DAG]:
    """Every DAG of ``use_case``, by DAG id: only the daily ingest-and-validate one for a use
    case without a learner (it has nothing to train or serve)."""
    dags = [build_daily_dag(use_case, catchup=daily_catchup)]
    if use_case.learner:
        dags += [
            build_run_dag(use_case),
            build_training_dag(use_case),
            build_rollout_dag(use_case),
            build_monitor_dag(use_case),
            build_retrain_dag(use_case),
        ]
    return {dag.dag_id: dag for dag in dags}


DAYS_PARAM = Param(
    1,
    type="integer",
    minimum=1,
    maximum=60,
    title="Days",
    description="How many days, ending at the run's date, to ingest and train on.",
)


def build_run_dag(use_case: UseCase) -> DAG:
    """The one-shot run: raw data to a served model, from the UI form or the REST API."""
    name = use_case.name
    with DAG(
        dag_id=use_case.run_dag_id,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=use_case.dag_tags,
        default_args=RETRIES,
        doc_md=run_doc(use_case),
        user_defined_macros={"settings": settings_macro(use_case)},
        params={
            "days": with_default(use_case, "days", DAYS_PARAM),
            "start_date": Param(
                None,
                type=["null", "string"],
                format="date",
                title="From (date)",
                description="With 'To', the days to ingest and train on (at most 60); "
                "overrides Days.",
            ),
            "end_date": Param(
                None,
                type=["null", "string"],
                format="date",
                title="To (date)",
                description="The last day of the range, inclusive.",
            ),
            **ingest_params(use_case),
            **training_params(use_case),
        },
    ) as dag:

        @lineage_task
        def ingest(params=None, run_id=None, **context) -> list[str]:
            from pipelines.data.ingest import days_to_ingest

            last_day = last_complete_day(context)
            days = days_to_ingest(
                last_day, params["days"], params["start_date"], params["end_date"]
            )
            return ingest_with_params(name, days, params, run_id)

        validate = DataValidationOperator(task_id="validate", dates=ingest(), use_case=name)
        train_register_serve(use_case, validate.output, dates_task="ingest")
    return dag


def build_daily_dag(use_case: UseCase, *, catchup: bool = False) -> DAG:
    """One day per run: ingest the day that just ended and validate it."""
    name = use_case.name
    with DAG(
        dag_id=use_case.daily_dag_id,
        # The run at midnight owns the day before it (run_offset=-1): its partition key.
        schedule=CronPartitionTimetable("0 0 * * *", timezone="UTC", run_offset=-1),
        start_date=START_DATE,
        catchup=catchup,
        max_active_runs=4,
        tags=[*use_case.dag_tags, "ingestion"],
        default_args=RETRIES,
        doc_md=daily_doc(use_case),
        params=ingest_params(use_case),
    ) as dag:

        @lineage_task
        def ingest(partition_key=None, params=None, run_id=None) -> list[str]:
            return ingest_with_params(name, [partition_day(partition_key)], params, run_id)

        DataValidationOperator(
            task_id="validate",
            dates=ingest(),
            use_case=name,
            outlets=[validated_asset(use_case)],
        )
    return dag


def build_training_dag(use_case: UseCase) -> DAG:
    """Train, register, promote and serve once a week of validated days is complete."""
    with DAG(
        dag_id=use_case.training_dag_id,
        schedule=PartitionedAssetTimetable(
            assets=validated_asset(use_case), default_partition_mapper=WEEKLY
        ),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[*use_case.dag_tags, "training"],
        default_args=RETRIES,
        doc_md=training_doc(use_case),
        user_defined_macros={"settings": settings_macro(use_case)},
        params=training_params(use_case),
    ) as dag:

        @task
        def partitions(partition_key=None) -> list[str]:
            """The week's seven days, all committed in the lake (a one-line error otherwise)."""
            from pipelines.data.lake import week_partitions
            from pipelines.settings import get_settings

            return week_partitions(get_settings().lake, partition_key, use_case.table.name)

        train_register_serve(use_case, partitions(), dates_task="partitions")
    return dag


def build_rollout_dag(use_case: UseCase) -> DAG:
    """One serving action per run on the use case's Serve application."""
    with DAG(
        dag_id=use_case.rollout_dag_id,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[*use_case.dag_tags, "serving"],
        default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
        doc_md=rollout_doc(use_case),
        user_defined_macros={"settings": settings_macro(use_case)},
        params={
            "action": Param(
                "promote",
                enum=["deploy", "canary", "shadow", "promote", "rollback"],
                title="Action",
            ),
            "version": Param(
                None,
                type=["null", "string"],
                pattern=r"^[0-9]+$",
                title="Model version",
                description="Registered version for deploy, canary and shadow.",
            ),
            "fraction": Param(
                0.1, type="number", minimum=0.01, maximum=1, title="Canary traffic share"
            ),
        },
    ) as dag:
        rollout = RayJobOperator(
            task_id="rollout",
            entrypoint=(
                "python -m ray_jobs.deploy --action {{ params.action }}"
                "{% if params.version %} --model-version {{ params.version }}{% endif %}"
                " --fraction {{ params.fraction }} {{ settings().rollout_args() }}"
            ),
        )
        smoke_test(use_case)(rollout.output)
    return dag


def drift_asset(use_case: UseCase) -> Asset:
    """Served traffic drifted from the champion's training data: the monitoring DAG emits it
    (``extra``: the drifted features and the window), the retraining DAG is scheduled on it."""
    return Asset(name=f"drift_{use_case.name}", uri=use_case.drift_asset_uri, group="conveyor")


def served_asset(use_case: UseCase) -> Asset:
    """The endpoint's captured traffic; the triggerer watches the lake and emits an event for
    each completed hour (``CapturedHoursTrigger``), which starts the monitoring DAG."""
    watcher = AssetWatcher(
        name=f"served_{use_case.name}_hours", trigger=CapturedHoursTrigger(use_case.name)
    )
    return Asset(
        name=f"served_{use_case.name}",
        uri=use_case.served_asset_uri,
        group="conveyor",
        watchers=[watcher],
    )


def build_monitor_dag(use_case: UseCase) -> DAG:
    """Once per completed hour of served traffic, and daily: the suite and drift checks on
    what the endpoint served, and a retraining request when the use case's drift policy says
    so."""
    name = use_case.name
    with DAG(
        dag_id=use_case.monitor_dag_id,
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable("@daily", timezone="UTC"),
            assets=[served_asset(use_case)],
        ),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[*use_case.dag_tags, "monitoring"],
        default_args=RETRIES,
        doc_md=monitor_doc(use_case),
        params={
            "window_hours": Param(
                use_case.drift.window_hours,
                type="integer",
                minimum=1,
                maximum=24 * 31,
                title="Window (hours)",
                description="The served traffic to check: these hours up to the run's time.",
            ),
        },
    ) as dag:

        @task
        def check(params=None, dag_run=None, run_id=None) -> dict:
            """The suite and drift verdict on the window (``pipelines.monitoring``), written as
            a page of the reports; compared with the champion's training partitions."""
            from datetime import timedelta as hours_of

            from conveyor_dag_factory.training import use_case_settings
            from pipelines.catalog import get_use_case, learner_of
            from pipelines.ml.registry import champion_training, version_reference_scores
            from pipelines.monitoring.monitor import ServedCheck, check_served, write_drift_report

            settings = use_case_settings(name)
            spec = get_use_case(name)
            end = dag_run.run_after
            start = end - hours_of(hours=params["window_hours"])
            version, dates = champion_training(settings.tracking_uri, settings.model_name)
            if version is None:
                found = ServedCheck(
                    name, start.isoformat(), end.isoformat(), 0, None, [], "no champion yet"
                )
            else:
                scores = version_reference_scores(
                    settings.tracking_uri, settings.model_name, version
                )
                found = check_served(
                    settings.lake, spec, learner_of(spec), start, end, dates, version, scores
                )
            write_drift_report(settings.reports_dir, use_case.monitor_dag_id, run_id, found)
            return found.as_dict()

        @task.short_circuit
        def drifted(found: dict) -> bool:
            """Skips the retraining request unless the policy asked for one."""
            return bool(found["retrain"])

        @task(outlets=[drift_asset(use_case)])
        def request_retraining(found: dict, outlet_events=None) -> None:
            outlet_events[drift_asset(use_case)].extra = {
                "drifted": found["drifted"],
                "window_end": found["end"],
                "model_version": found["model_version"],
            }

        found = check()
        drifted(found) >> request_retraining(found)
    return dag


def build_retrain_dag(use_case: UseCase) -> DAG:
    """Train on the latest validated days when the monitoring DAG reports drift; the new
    model goes through the same gate, so one that does not beat the champion changes
    nothing."""
    with DAG(
        dag_id=use_case.retrain_dag_id,
        schedule=[drift_asset(use_case)],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[*use_case.dag_tags, "training"],
        default_args=RETRIES,
        doc_md=retrain_doc(use_case),
        user_defined_macros={"settings": settings_macro(use_case)},
        params={"days": with_default(use_case, "days", DAYS_PARAM), **training_params(use_case)},
    ) as dag:

        @task
        def partitions(params=None) -> list[str]:
            """The latest ``days`` committed partitions that passed validation."""
            from pipelines.data.validation import latest_validated_days
            from pipelines.settings import get_settings

            settings = get_settings()
            result_dir = settings.validation_dir / use_case.name
            return latest_validated_days(
                settings.lake, use_case.table.name, result_dir, params["days"]
            )

        train_register_serve(use_case, partitions(), dates_task="partitions")
    return dag
