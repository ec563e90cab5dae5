"""The "Run report" button: the run's report page, served by the ``conveyor`` plugin at
``/conveyor/reports`` (see ``plugins/conveyor_plugin.py``)."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink

REPORT_URL_KEY = "report_url"
REPORTS_PREFIX = "/conveyor/reports"


class RunReportLink(BaseOperatorLink):
    name = "Run report"

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=REPORT_URL_KEY) or ""
