"""The "Run report" button: the run's report page, served by the ``conveyor`` plugin at
``/conveyor/reports`` (see ``plugins/conveyor_plugin.py``)."""

from __future__ import annotations

from conveyor_provider.links.xcom_url import XComUrlLink

REPORT_URL_KEY = "report_url"
REPORTS_PREFIX = "/conveyor/reports"


class RunReportLink(XComUrlLink):
    name = "Run report"
    xcom_key = REPORT_URL_KEY
