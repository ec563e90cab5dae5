"""The "Data Docs" button on the validate task: that run's validation page.

The pages are served by the Airflow api-server itself, through the ``conveyor`` plugin's
FastAPI app mounted at ``/conveyor/data-docs`` (see ``plugins/conveyor_plugin.py``).
"""

from __future__ import annotations

from conveyor_provider.links.xcom_url import XComUrlLink

DATA_DOCS_URL_KEY = "data_docs_url"
DATA_DOCS_PREFIX = "/conveyor/data-docs"


class DataDocsLink(XComUrlLink):
    name = "Data Docs"
    xcom_key = DATA_DOCS_URL_KEY
