"""The run's report: one page per DAG run, written at the end whatever happened.

Thin: it gathers the upstream tasks' results (XComs) and states and calls
``pipelines.report.write_run_report``. It runs with ``trigger_rule="all_done"``; after writing
the page it fails if any upstream task failed, so the run's state stays the pipeline's state
(the report is the only leaf). The **Run report** button opens the page.
"""

from __future__ import annotations

import json

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from conveyor_provider.links.data_docs import DATA_DOCS_URL_KEY
from conveyor_provider.links.ray_job import RAY_JOB_URL_KEY
from conveyor_provider.links.report import REPORT_URL_KEY, REPORTS_PREFIX, RunReportLink
from conveyor_provider.operators.ray_job import JOB_ERROR_KEY
from conveyor_provider.operators.validation import VALIDATION_DIR_KEY

FAILED = ("failed", "upstream_failed")
NOTES_CONN_ID = "conveyor_airflow_api"
"""An HTTP Connection to Airflow's own REST API (login and password of a user who may edit
DAG runs): when it exists, the report task writes the run's outcome as the DAG run's note,
which the grid shows and the REST API returns. ``conveyor up`` and the real-stack test set it."""
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
            serving_error=ti.xcom_pull(task_ids=self.deploy_task, key=JOB_ERROR_KEY),
        )
        relative = path.relative_to(settings.reports_dir).as_posix()
        ti.xcom_push(key=REPORT_URL_KEY, value=f"{REPORTS_PREFIX}/{relative}")
        outcome = (path.parent / "summary.json").read_text()
        self._note(ti.dag_id, run_id, json.loads(outcome)["verdict"])
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

    def _note(self, dag_id: str, run_id: str, text: str) -> None:
        """The run's outcome as its DAG run note, through the REST API, when the
        ``conveyor_airflow_api`` Connection exists; a failure here is logged, never the task's:
        the report is written, and the outcome is in this task's log either way."""
        from urllib.parse import quote

        import httpx
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        self.log.info("outcome: %s", text)
        try:
            conn = BaseHook.get_connection(NOTES_CONN_ID)
        except AirflowNotFoundException:
            self.log.info("no %s Connection: the run's note is left as it is", NOTES_CONN_ID)
            return
        base = f"{conn.schema or 'http'}://{conn.host}:{conn.port}"
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                token = client.post(
                    "/auth/token", json={"username": conn.login, "password": conn.password}
                )
                token.raise_for_status()
                answer = client.patch(
                    f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
                    params={"update_mask": "note"},
                    json={"note": text},
                    headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                )
                answer.raise_for_status()
        except httpx.HTTPError as exc:
            self.log.warning("the run's note was not set (%s): %s", NOTES_CONN_ID, exc)

    def _upstream_states(self, ti, run_id: str) -> dict[str, str]:
        upstream = sorted(self.get_flat_relative_ids(upstream=True))
        found = ti.get_task_states(dag_id=ti.dag_id, task_ids=upstream, run_ids=[run_id])
        by_task = found.get(run_id, found)
        return {task: str(by_task.get(task)) for task in upstream}
