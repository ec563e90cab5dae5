"""The run's report: one page per DAG run, written at the end whatever happened.

Thin: it gathers the upstream tasks' results (XComs) and states and calls
``pipelines.report.write_run_report``. It runs with ``trigger_rule="all_done"``; after writing
the page it fails if any upstream task failed, so the run's state stays the pipeline's state
(the report is the only leaf). The **Run report** button opens the page.
"""

from __future__ import annotations

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from conveyor_provider.links.data_docs import DATA_DOCS_URL_KEY
from conveyor_provider.links.ray_job import RAY_JOB_URL_KEY
from conveyor_provider.links.report import REPORT_URL_KEY, REPORTS_PREFIX, RunReportLink
from conveyor_provider.operators.validation import VALIDATION_DIR_KEY

FAILED = ("failed", "upstream_failed")
DECISION_KEY = "decision"
"""The promote task's XCom holding the gate's decision (``PromotionDecision.as_dict()``)."""


class RunReportOperator(BaseOperator):
    """Write the run report from the results of the pipeline's tasks (by task id)."""

    operator_extra_links = (RunReportLink(),)
    ui_color = "#f4f1e8"

    def __init__(
        self,
        *,
        ingest_task: str = "ingest",
        validate_task: str = "validate",
        use_case: str,
        train_task: str = "train",
        register_task: str = "register",
        promote_task: str = "promote",
        deploy_task: str = "deploy",
        trigger_rule: str = "all_done",
        **kwargs,
    ):
        super().__init__(trigger_rule=trigger_rule, **kwargs)
        self.ingest_task = ingest_task
        self.validate_task = validate_task
        self.use_case = use_case
        self.train_task = train_task
        self.register_task = register_task
        self.promote_task = promote_task
        self.deploy_task = deploy_task

    def execute(self, context) -> str:
        from pipelines.catalog import get_use_case
        from pipelines.report import write_run_report
        from pipelines.settings import get_settings

        ti, run_id = context["ti"], context["run_id"]
        states = self._upstream_states(ti, run_id)
        settings = get_settings()
        # Where the validate task of this run kept its results; a run without one (the weekly
        # training) reads the use case's folder, where its days were validated.
        validation_dir = ti.xcom_pull(task_ids=self.validate_task, key=VALIDATION_DIR_KEY)
        if not validation_dir:
            validation_dir = settings.validation_dir / self.use_case
        registered = ti.xcom_pull(task_ids=self.register_task)
        rollout = ti.xcom_pull(task_ids=self.deploy_task)
        path = write_run_report(
            settings.reports_dir,
            dag_id=ti.dag_id,
            run_id=run_id,
            lake_root=settings.lake,
            table=get_use_case(self.use_case).table.name,
            validation_dir=validation_dir,
            tasks=states,
            dates=ti.xcom_pull(task_ids=self.ingest_task),
            train=ti.xcom_pull(task_ids=self.train_task),
            registered=registered,
            served_version=ti.xcom_pull(task_ids=self.promote_task),
            rollout=rollout,
            decision=ti.xcom_pull(task_ids=self.promote_task, key=DECISION_KEY),
            links=self._links(ti, settings, registered, rollout),
        )
        relative = path.relative_to(settings.reports_dir).as_posix()
        ti.xcom_push(key=REPORT_URL_KEY, value=f"{REPORTS_PREFIX}/{relative}")
        failed = sorted(t for t, s in states.items() if s in FAILED)
        if failed:
            raise AirflowFailException(f"report written ({path}); the run failed at {failed[0]}")
        return str(path)

    def _links(self, ti, settings, registered: dict | None, rollout: dict | None) -> dict:
        """Where to look next: the Data Docs page, the Ray job, the MLflow run and model
        version, the endpoint; each only when this run produced it."""
        links = {}
        docs = ti.xcom_pull(task_ids=self.validate_task, key=DATA_DOCS_URL_KEY)
        if docs:
            links["Data Docs (validation)"] = docs
        job = ti.xcom_pull(task_ids=self.train_task, key=RAY_JOB_URL_KEY)
        if job:
            links["Ray job (training)"] = job
        if registered:
            from pipelines.ml.registry import ui_links

            links.update(ui_links(settings.tracking_uri, registered))
        if rollout and rollout.get("endpoint"):
            links["Endpoint (OpenAPI)"] = f"{rollout['endpoint']}/docs"
        return links

    def _upstream_states(self, ti, run_id: str) -> dict[str, str]:
        upstream = sorted(self.get_flat_relative_ids(upstream=True))
        found = ti.get_task_states(dag_id=ti.dag_id, task_ids=upstream, run_ids=[run_id])
        by_task = found.get(run_id, found)
        return {task: str(by_task.get(task)) for task in upstream}
