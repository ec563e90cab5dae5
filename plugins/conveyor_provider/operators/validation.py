"""Validate lake partitions with Great Expectations; quarantine the ones that fail.

Thin: it calls ``pipelines.data.validation.validate_days``, publishes the run's Data Docs page as
the task's "Data Docs" link, and fails the task without retries (the data will not change)
when any partition failed a critical expectation, so training and deployment do not run.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from conveyor_provider.links.data_docs import DATA_DOCS_PREFIX, DATA_DOCS_URL_KEY, DataDocsLink


class DataValidationOperator(BaseOperator):
    """Validate ``dates`` (YYYY-MM-DD strings, or an XComArg of them); returns the dates."""

    template_fields = ("dates",)
    operator_extra_links = (DataDocsLink(),)
    ui_color = "#f3f7e9"

    def __init__(
        self, *, dates, lake_root: str | None = None, validation_dir: str | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.dates = dates
        self.lake_root = lake_root
        self.validation_dir = validation_dir

    def execute(self, context) -> list[str]:
        from pipelines.data.validation import run_label, validate_days
        from pipelines.settings import get_settings

        settings = get_settings()
        result_dir = self.validation_dir or str(settings.validation_dir)
        days = [dt.date.fromisoformat(str(d)) for d in self.dates]
        reports = validate_days(
            self.lake_root or settings.lake, days, result_dir, run_id=context["run_id"]
        )
        label = run_label(context["run_id"], dt.datetime.now(dt.UTC))
        context["ti"].xcom_push(key=DATA_DOCS_URL_KEY, value=_page_url(f"runs/{label}.html"))
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
