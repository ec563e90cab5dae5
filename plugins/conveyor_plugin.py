"""Airflow plugin: serves validation pages (GX Data Docs) and run reports from the api-server.

Mounted at ``/conveyor/data-docs`` (Conveyor's validation directory) and ``/conveyor/reports``
(``CONVEYOR_HOME/reports``); the validate task's "Data Docs" button and the report task's
"Run report" button point here. Like other plugin apps they are not behind Airflow's login:
put the api-server behind your proxy's auth if result samples or metrics are sensitive.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from conveyor_provider.links.data_docs import DATA_DOCS_PREFIX, DataDocsLink
from conveyor_provider.links.ray_job import RayJobLink
from conveyor_provider.links.report import REPORTS_PREFIX, RunReportLink


def static_app(title: str, directory):
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    app = FastAPI(title=title)
    app.mount("/", StaticFiles(directory=directory, html=True, check_dir=False), name="files")
    return app


def _settings():
    from pipelines.settings import get_settings

    return get_settings()


class ConveyorPlugin(AirflowPlugin):
    name = "conveyor"
    fastapi_apps = [
        {
            "app": static_app("Conveyor data docs", _settings().validation_dir),
            "url_prefix": DATA_DOCS_PREFIX,
            "name": "Conveyor data docs",
        },
        {
            "app": static_app("Conveyor run reports", _settings().reports_dir),
            "url_prefix": REPORTS_PREFIX,
            "name": "Conveyor run reports",
        },
    ]
    operator_extra_links = [RayJobLink(), DataDocsLink(), RunReportLink()]
