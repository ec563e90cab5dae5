"""The "Data Docs" button on the validate task: that run's validation page.

The pages are served by the Airflow api-server itself, through the ``conveyor`` plugin's
FastAPI app mounted at ``/conveyor/data-docs`` (see ``plugins/conveyor_plugin.py``).
"""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink

DATA_DOCS_URL_KEY = "data_docs_url"
DATA_DOCS_PREFIX = "/conveyor/data-docs"


class DataDocsLink(BaseOperatorLink):
    name = "Data Docs"

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=DATA_DOCS_URL_KEY) or ""
