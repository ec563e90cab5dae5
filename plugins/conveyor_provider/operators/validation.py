"""Validate lake partitions with Great Expectations; quarantine the ones that fail.

Thin: it calls ``pipelines.data.validation.validate_days`` with the use case's suite and
table, keeps results in the use case's own folder (``<validation_dir>/<use case>/``: scheduled
run ids repeat across DAGs), hands that folder to the report (XCom ``validation_dir``),
publishes the run's Data Docs page as the task's "Data Docs" link, and fails the task without
retries (the data will not change) when any partition failed a critical expectation, so
training and deployment do not run. Its OpenLineage inputs are the partitions it read.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from conveyor_provider.lineage import ReportsLineage
from conveyor_provider.links.data_docs import DATA_DOCS_PREFIX, DATA_DOCS_URL_KEY, DataDocsLink

VALIDATION_DIR_KEY = "validation_dir"


class DataValidationOperator(ReportsLineage, BaseOperator):
    """Validate ``dates`` (YYYY-MM-DD strings, or an XComArg of them) of ``use_case``'s table
    with its suite; returns the dates."""

    template_fields = ("dates",)
    operator_extra_links = (DataDocsLink(),)
    ui_color = "#f3f7e9"

    def __init__(
        self,
        *,
        dates,
        use_case: str,
        lake_root: str | None = None,
        validation_dir: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dates = dates
        self.use_case = use_case
        self.lake_root = lake_root
        self.validation_dir = validation_dir

    def execute(self, context) -> list[str]:
        from pathlib import Path

        from pipelines.catalog import get_use_case
        from pipelines.data.validation import run_label, suite_path_for, validate_days
        from pipelines.lineage import Lineage, lake_partitions
        from pipelines.settings import get_settings

        settings = get_settings()
        use_case = get_use_case(self.use_case)
        served = Path(self.validation_dir or settings.validation_dir)
        suite, table = suite_path_for(use_case), use_case.table.name
        result_dir = served / use_case.name
        days = [dt.date.fromisoformat(str(d)) for d in self.dates]
        lake_root = self.lake_root or settings.lake
        self.lineage = Lineage(inputs=lake_partitions(lake_root, table, days))
        reports = validate_days(
            lake_root,
            days,
            result_dir,
            run_id=context["run_id"],
            suite_path=suite,
            table=table,
        )
        ti = context["ti"]
        ti.xcom_push(key=VALIDATION_DIR_KEY, value=str(result_dir))
        label = run_label(context["run_id"], dt.datetime.now(dt.UTC))
        page = (result_dir / "runs" / f"{label}.html").relative_to(served).as_posix()
        ti.xcom_push(key=DATA_DOCS_URL_KEY, value=_page_url(page))
        failed = [r for r in reports if not r.success]
        if failed:
            raise AirflowFailException("validation failed for " + "; ".join(map(_summary, failed)))
        return [r.date for r in reports]


def _summary(report) -> str:
    rules = sorted({f["rule"] or f["expectation"] for f in report.critical_failures})
    return (
        f"{report.date}: {len(report.critical_failures)} critical failure(s) ({', '.join(rules)}),"
        f" quarantined at {report.quarantined_at}"
    )


def _page_url(relative: str) -> str:
    from airflow.sdk.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{DATA_DOCS_PREFIX}/{relative}"
